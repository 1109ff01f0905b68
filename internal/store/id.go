package store

import "vivace.dev/vivace/internal/ids"

// NewID returns a new version 7 UUID in its text form (ids.New): the ids
// of the rows the stores write.
func NewID() string { return ids.New() }
