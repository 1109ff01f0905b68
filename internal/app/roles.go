package app

import (
	"fmt"
	"slices"
	"strings"
)

// Role is one part of Vivace that `vivace serve --role` runs.
type Role string

// The roles (docs/deploy.md, "Roles").
const (
	RoleAPI     Role = "api"     // the HTTP API: uploads, exports, feed repair, sync and settings routes
	RoleIngest  Role = "ingest"  // the inbox and bucket sources and the ingest pipeline
	RoleMediate Role = "mediate" // the mediate pipeline
	RoleRate    Role = "rate"    // the rate and exceptions pipelines
	RoleCatalog Role = "catalog" // the catalog pipeline and the core system's Data Feed
	RoleSync    Role = "sync"    // the MUR sync scheduler and the sync pipeline
	RoleAll     Role = "all"     // every role in one process
)

// Every lists the roles that all stands for, in order.
var Every = []Role{RoleAPI, RoleIngest, RoleMediate, RoleRate, RoleCatalog, RoleSync}

// Roles is a set of roles.
type Roles []Role

// ParseRoles reads a comma-separated list of roles ("mediate,rate"),
// naming the first that is not one.
func ParseRoles(s string) (Roles, error) {
	var out Roles
	for _, p := range strings.Split(s, ",") {
		r := Role(strings.TrimSpace(p))
		if r == "" {
			continue
		}
		if r != RoleAll && !slices.Contains(Every, r) {
			return nil, fmt.Errorf("role %q: not one of api, ingest, mediate, rate, catalog, sync, all", r)
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no role given: name one or more of api, ingest, mediate, rate, catalog, sync, all")
	}
	return out, nil
}

// All reports whether the set holds every role.
func (rs Roles) All() bool { return slices.Contains(rs, RoleAll) }

// Has reports whether the set holds r (every role, with all).
func (rs Roles) Has(r Role) bool { return rs.All() || slices.Contains(rs, r) }

func (rs Roles) String() string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ",")
}
