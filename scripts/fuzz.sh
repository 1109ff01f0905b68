#!/usr/bin/env bash
# Runs every Go fuzz target for FUZZTIME each (default 1m), one after the
# other: the parsers of outside input (docs: CONTRIBUTING.md, "Test").
# `make test` runs the same targets on their seed corpus only. A failing
# input is written under the package's testdata/fuzz/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-1m}"
GO="${GO:-go}"
failed=0
while IFS= read -r file; do
	dir="./$(dirname "$file")"
	for name in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/'); do
		echo "== $dir $name ($FUZZTIME)"
		if ! "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$dir"; then
			failed=1
		fi
	done
done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' | sort)
exit "$failed"
