package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"

	"vivace.dev/vivace/internal/jsonx"
)

// internalError logs what failed and answers 500 with a reference to the
// log line, never the error itself: it may hold SQL or a server's words.
func (s *Server) internalError(w http.ResponseWriter, what string, err error) {
	ref := make([]byte, 6)
	_, _ = rand.Read(ref)
	id := hex.EncodeToString(ref)
	s.log().Error("request failed", "what", what, "ref", id, "err", err)
	writeError(w, http.StatusInternalServerError, fmt.Sprintf("internal error %s: see the server log (ref %s)", what, id))
}

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
