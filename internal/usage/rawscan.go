package usage

import (
	"unicode/utf8"
)

// maxScanFields bounds the fields ScanRaw reads before it leaves a record
// to encoding/json (it checks names for repeats pairwise).
const maxScanFields = 64

// ScanRaw reads a Raw written the plain way, as the ingest stage writes
// it, without reflection and without a map: the source, and the fields as
// name, value pairs appended to kv, in their order in s. The strings are
// substrings of s. ok is false for anything else (an escape in a string, a
// key it does not know, a repeated field, a null, a malformed document):
// then nothing is known and the caller decodes s with encoding/json, which
// reads the same document to the same record whenever ok is true.
func ScanRaw(s string, kv []string) (src Source, out []string, ok bool) {
	sc := rawScanner{s: s}
	start := len(kv)
	sc.ws()
	if !sc.byte('{') {
		return Source{}, kv, false
	}
	sawFields := false
	for first := true; ; first = false {
		sc.ws()
		if first && sc.byte('}') {
			break
		}
		key, good := sc.str()
		if !good || !sc.colon() {
			return Source{}, kv[:start], false
		}
		switch key {
		case "client":
			src.Client, good = sc.str()
		case "file_id":
			src.FileID, good = sc.str()
		case "line":
			src.Line, good = sc.int()
		case "part":
			var n int64
			n, good = sc.int()
			src.Part = int(n)
		case "parts":
			var n int64
			n, good = sc.int()
			src.Parts = int(n)
		case "fields":
			if sawFields { // encoding/json would merge the two
				return Source{}, kv[:start], false
			}
			sawFields = true
			kv, good = sc.fields(kv, start)
		default:
			good = false
		}
		if !good {
			return Source{}, kv[:start], false
		}
		sc.ws()
		if sc.byte(',') {
			continue
		}
		if sc.byte('}') {
			break
		}
		return Source{}, kv[:start], false
	}
	sc.ws()
	if sc.at != len(s) {
		return Source{}, kv[:start], false
	}
	return src, kv, true
}

type rawScanner struct {
	s  string
	at int
}

func (sc *rawScanner) ws() {
	for sc.at < len(sc.s) {
		switch sc.s[sc.at] {
		case ' ', '\t', '\n', '\r':
			sc.at++
		default:
			return
		}
	}
}

func (sc *rawScanner) byte(c byte) bool {
	if sc.at < len(sc.s) && sc.s[sc.at] == c {
		sc.at++
		return true
	}
	return false
}

func (sc *rawScanner) colon() bool {
	sc.ws()
	ok := sc.byte(':')
	sc.ws()
	return ok
}

// str reads a string without escapes, its bytes valid UTF-8 and none a
// control character.
func (sc *rawScanner) str() (string, bool) {
	if !sc.byte('"') {
		return "", false
	}
	start, ascii := sc.at, true
	for sc.at < len(sc.s) {
		c := sc.s[sc.at]
		switch {
		case c == '"':
			v := sc.s[start:sc.at]
			sc.at++
			if !ascii && !utf8.ValidString(v) {
				return "", false // encoding/json replaces the bad bytes
			}
			return v, true
		case c == '\\' || c < 0x20:
			return "", false
		case c >= 0x80:
			ascii = false
		}
		sc.at++
	}
	return "", false
}

// int reads an integer as JSON writes it, without fraction or exponent,
// of at most 18 digits.
func (sc *rawScanner) int() (int64, bool) {
	neg := sc.byte('-')
	start := sc.at
	var n int64
	for sc.at < len(sc.s) && sc.s[sc.at] >= '0' && sc.s[sc.at] <= '9' {
		n = n*10 + int64(sc.s[sc.at]-'0')
		sc.at++
	}
	digits := sc.at - start
	if digits == 0 || digits > 18 || (digits > 1 && sc.s[start] == '0') {
		return 0, false
	}
	if sc.at < len(sc.s) {
		switch sc.s[sc.at] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	if neg {
		n = -n
	}
	return n, true
}

// fields reads an object of strings into kv; start is where this record's
// pairs begin.
func (sc *rawScanner) fields(kv []string, start int) ([]string, bool) {
	if !sc.byte('{') {
		return kv, false
	}
	sc.ws()
	if sc.byte('}') {
		return kv, true
	}
	for {
		sc.ws()
		k, ok := sc.str()
		if !ok || !sc.colon() {
			return kv, false
		}
		v, ok := sc.str()
		if !ok || len(kv)-start >= 2*maxScanFields {
			return kv, false
		}
		for i := start; i < len(kv); i += 2 {
			if kv[i] == k {
				return kv, false // encoding/json keeps the last
			}
		}
		kv = append(kv, k, v)
		sc.ws()
		if sc.byte(',') {
			continue
		}
		return kv, sc.byte('}')
	}
}
