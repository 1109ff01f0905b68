package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"vivace.dev/vivace/internal/jsonx"
)

// bodyProblem says what is wrong with a request body that does not decode,
// in the JSON's terms: what it holds where, and what was expected.
func bodyProblem(err error, want string) string {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fmt.Sprintf("larger than %d bytes", mbe.Limit)
	}
	if errors.Is(err, io.EOF) {
		return "empty; expected " + want
	}
	return jsonx.Describe(err, want).Error()
}
