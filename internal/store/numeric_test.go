package store_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"vivace.dev/vivace/internal/pgtest"
)

// TestNumericParameters: decimals passed as strings reach numeric and
// numeric[] parameters as the server reads the same text (value and
// scale), NULLs included; what is not a plain decimal still goes as text
// and is judged by the server.
func TestNumericParameters(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	values := []string{"0", "-0", "+0", "0.0", "00012.5000", "1", "9999", "10000", "12345678.87654321", "-1.5",
		".5", "5.", "0.0001", "0.00001", "-0.000000001230", "100000000", "1234.0000", "0.10",
		"99999999999999999999.99999999999999999999", "3.14159265358979323846264338327950288419716939937510",
		strings.Repeat("9", 60) + "." + strings.Repeat("0", 30) + "1", "1e5", "1.5E-3", "NaN"}
	for _, v := range values {
		var same bool
		var got, want string
		if err := st.Pool().QueryRow(ctx, `SELECT $1::numeric::text = $2::text::numeric::text, $1::numeric::text, $2::text::numeric::text`, v, v).
			Scan(&same, &got, &want); err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		if !same {
			t.Errorf("%q: as a parameter %s, as text %s", v, got, want)
		}
	}
	var same bool
	ptrs := make([]*string, len(values)+1)
	for i := range values {
		ptrs[i] = &values[i]
	}
	if err := st.Pool().QueryRow(ctx, `SELECT $1::numeric[]::text = $2::text::numeric[]::text AND $3::numeric[]::text = $4::text::numeric[]::text`,
		values, "{"+strings.Join(values, ",")+"}", ptrs, "{"+strings.Join(values, ",")+",NULL}").Scan(&same); err != nil || !same {
		t.Fatalf("numeric[] parameters: %v %v", same, err)
	}
	for _, bad := range []string{"", "-", ".", "1.2.3", "١"} {
		if err := st.Pool().QueryRow(ctx, `SELECT $1::numeric::text`, bad).Scan(new(string)); err == nil {
			t.Errorf("%q taken as a number", bad)
		}
	}
}

// BenchmarkNumericArrayParameter: a batch's worth of counter values (as
// the rate stage writes them back) as one numeric[] parameter.
func BenchmarkNumericArrayParameter(b *testing.B) {
	ctx := context.Background()
	st := pgtest.Store(b)
	p := make([]string, 2000)
	for i := range p {
		p[i] = strconv.Itoa(i*7919%100000) + "." + strconv.Itoa(10+i%90)
	}
	b.ReportAllocs()
	for b.Loop() {
		var n int
		if err := st.Pool().QueryRow(ctx, `SELECT cardinality($1::numeric[])`, p).Scan(&n); err != nil || n != 2000 {
			b.Fatal(n, err)
		}
	}
}
