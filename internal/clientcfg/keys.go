package clientcfg

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// checkKeys walks the settings document and reports every mapping key
// that is no setting, naming the file, the line and the key's path: a
// misspelt "validaton:" would otherwise be dropped in silence and the
// client run on defaults. The settings are our own, so strictness costs
// nothing. Blocks that check their own keys (a source, a duration) and
// free-form blocks (a plugin's config, a column mapping) are not walked.
func checkKeys(name string, doc *yaml.Node) []error {
	if doc == nil || doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	var errs []error
	walkKeys(name, "", doc.Content[0], reflect.TypeFor[File](), &errs)
	return errs
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func walkKeys(name, path string, n *yaml.Node, t reflect.Type, errs *[]error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) || n.Kind != yaml.MappingNode {
		return // it checks itself, or the decoder reports the wrong shape
	}
	switch t.Kind() {
	case reflect.Map:
		if t.Elem().Kind() == reflect.Interface || t.Elem().Kind() == reflect.String {
			return // free-form: a plugin's config, a column mapping
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			walkKeys(name, join(path, n.Content[i].Value), n.Content[i+1], t.Elem(), errs)
		}
	case reflect.Struct:
		fields := settingsOf(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, fmt.Errorf("%s: line %d: %s: not a setting%s", name, k.Line, join(path, k.Value), suggest(k.Value, fields)))
				continue
			}
			walkKeys(name, join(path, k.Value), n.Content[i+1], ft, errs)
		}
	}
}

// settingsOf maps the YAML keys of a settings struct to their types.
func settingsOf(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || key == "" || key == "-" {
			continue
		}
		m[key] = f.Type
	}
	return m
}

// suggest names the setting a misspelt key most likely meant, and lists
// the settings of its block.
func suggest(key string, fields map[string]reflect.Type) string {
	known := make([]string, 0, len(fields))
	for k := range fields {
		known = append(known, k)
	}
	sort.Strings(known)
	best, bestD := "", 3 // at most two edits away
	for _, k := range known {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	s := " (known here: " + strings.Join(known, ", ") + ")"
	if best != "" {
		s = fmt.Sprintf("; did you mean %s?%s", best, s)
	}
	return s
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
