package main

import (
	"fmt"
	"slices"
	"testing"
)

func TestFirstCopies(t *testing.T) {
	unique, copies := firstCopies([]string{"b", "a", "b", "c", "b", "a"})
	if !slices.Equal(unique, []string{"b", "a", "c"}) || fmt.Sprint(copies) != "map[a:1 b:2]" {
		t.Fatalf("unique %v, copies %v", unique, copies)
	}
	ids := []string{"x", "y", "z"}
	unique, copies = firstCopies(ids)
	if !slices.Equal(unique, ids) || len(copies) != 0 || !slices.Equal(ids, []string{"x", "y", "z"}) {
		t.Fatalf("no repeats: unique %v, copies %v, ids now %v", unique, copies, ids)
	}
}
