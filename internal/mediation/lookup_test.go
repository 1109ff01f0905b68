package mediation

import (
	"strings"
	"testing"
)

func TestLookupCSV(t *testing.T) {
	l, err := NewLookupCSV("msisdn.csv", strings.NewReader("\ufeffmsisdn, account_id ,region\n4917000001,A100,EU\n\"4917000002\",A200,\"US, East\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c := l.Columns(); strings.Join(c, "|") != "msisdn|account_id|region" {
		t.Fatalf("columns = %q", c)
	}
	var got []string
	for l.Next() {
		k, v := l.Entry()
		got = append(got, k+"="+v["account_id"]+"/"+v["region"])
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ";") != "4917000001=A100/EU;4917000002=A200/US, East" || l.Len() != 2 {
		t.Fatalf("entries = %q", got)
	}
}

func TestLookupCSVErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "f.csv: empty file"},
		{"msisdn\n1\n", "f.csv line 1: the header names 1 column(s)"},
		{"msisdn,,x\n", "f.csv line 1: column 2 has no name"},
		{"msisdn,a,a\n", `f.csv line 1: column "a" appears twice (columns 2 and 3)`},
		{"msisdn,a\n1,x\n2,y,z\n", "f.csv line 3: 3 fields, the header has 2"},
		{"msisdn,a\n1,x\n ,y\n", `f.csv line 3: the key (column "msisdn") is empty`},
		{"msisdn,a\n1,x\n2,y\n1,z\n", `f.csv line 4: key "1" appears again (first on line 2)`},
		{"msisdn,a\n1,x\n2,\"y\n", "f.csv: line 3, column"},
	} {
		l, err := NewLookupCSV("f.csv", strings.NewReader(tc.in))
		if err == nil {
			for l.Next() {
			}
			err = l.Err()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.want)
		}
	}
}
