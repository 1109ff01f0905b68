package exceptions

import "vivace.dev/vivace/internal/codes"

// Window is a window of a list of exceptions, newest first: at most Limit
// exceptions recorded before the one with id After ("" for the first
// page). Exception ids sort by when they were made, so the order is the
// order in which the exceptions were recorded and a page cannot shift
// when new ones arrive.
type Window struct {
	After string
	Limit int
}

// Tally is how many exceptions a filter selects with one code at one
// stage; a list's counts by code and by stage sum its tallies.
type Tally struct {
	Code  codes.Code
	Stage string
	Count int64
}
