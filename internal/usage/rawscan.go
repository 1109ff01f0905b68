package usage

// maxScanFields bounds the fields ScanRaw reads before it leaves a record
// to encoding/json (it checks names for repeats pairwise).
const maxScanFields = 64

// ScanRaw reads a Raw written the plain way, as the ingest stage writes
// it, without reflection and without a map: the source, and the fields as
// name, value pairs appended to kv, in their order in s. Strings without
// escapes are substrings of s. ok is false for anything else (a key it
// does not know, a repeated field, a null, a surrogate escape, a
// malformed document): then nothing is known and the caller decodes s
// with encoding/json, which reads the same document to the same record
// whenever ok is true.
func ScanRaw(s string, kv []string) (src Source, out []string, ok bool) {
	start := len(kv)
	src, _, ok = scanSource(s, func(k, v string) bool {
		if len(kv)-start >= 2*maxScanFields {
			return false
		}
		for i := start; i < len(kv); i += 2 {
			if kv[i] == k {
				return false // encoding/json keeps the last
			}
		}
		kv = append(kv, k, v)
		return true
	})
	if !ok {
		return Source{}, kv[:start], false
	}
	return src, kv, true
}
