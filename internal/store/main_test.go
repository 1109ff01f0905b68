package store_test

import (
	"testing"

	"vivace.dev/vivace/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
