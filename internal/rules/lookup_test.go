package rules

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
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
		{"msisdn,a\n1,x\n2,y\x00\n", `f.csv line 3: column "a" is not UTF-8 text`},
		{"msisdn,a\n1,x\n\xff,y\n", `f.csv line 3: column "msisdn" is not UTF-8 text`},
		{"msisdn,\xff\n", "f.csv line 1: the name of column 2 is not UTF-8 text"},
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

func TestLookupCacheExpiryAndSize(t *testing.T) {
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	c := NewLookupCache[string](time.Minute, 10*time.Second, 3, func() time.Time { return now })
	c.Put("a", map[string]string{"v": "1"})
	c.Put("miss", nil)
	if v, ok := c.Get("a"); !ok || v["v"] != "1" {
		t.Fatalf("a: %v %v", v, ok)
	}
	if v, ok := c.Get("miss"); !ok || v != nil {
		t.Fatalf("miss: %v %v", v, ok)
	}
	if _, ok := c.Get("b"); ok {
		t.Fatal("b was never put")
	}
	now = now.Add(10 * time.Second)
	if _, ok := c.Get("miss"); ok {
		t.Fatal("a miss outlived miss_ttl")
	}
	if _, ok := c.Get("a"); !ok {
		t.Fatal("an entry expired before its ttl")
	}
	// Full: the expired miss goes first, then everything.
	c.Put("b", map[string]string{})
	c.Put("c", map[string]string{})
	if c.Len() != 3 {
		t.Fatalf("len = %d after evicting the expired miss", c.Len())
	}
	c.Put("d", map[string]string{})
	if c.Len() != 1 {
		t.Fatalf("len = %d after clearing a full cache", c.Len())
	}
	off := NewLookupCache[string](0, time.Second, 3, nil)
	off.Put("a", map[string]string{})
	if _, ok := off.Get("a"); ok || off.Len() != 0 {
		t.Fatal("a zero ttl cached")
	}
}

// FuzzLookupCSV: any input either fails with an error naming the file or
// gives entries with non-empty, distinct keys and one value per column.
func FuzzLookupCSV(f *testing.F) {
	for _, s := range []string{"k,v\n1,a\n", "\ufeffk,a,b\n1,,\n2,\"x,y\",z\n", "k\n", "k,v\n1\n", "k,v\n\"1\n", "k,v\n1,a\n1,b\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		l, err := NewLookupCSV("f.csv", strings.NewReader(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.csv") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		seen := map[string]bool{}
		for l.Next() {
			k, v := l.Entry()
			if k == "" || k != strings.TrimSpace(k) || seen[k] || len(v) != len(l.Columns())-1 || l.Line() < 2 || !utf8.ValidString(k) {
				t.Fatalf("entry %q %v on line %d", k, v, l.Line())
			}
			seen[k] = true
		}
		if err := l.Err(); err != nil && !strings.HasPrefix(err.Error(), "f.csv") {
			t.Fatalf("error does not name the file: %v", err)
		}
	})
}
