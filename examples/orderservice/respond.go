package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
)

// errorBody is every error answer: success false and what went wrong.
type errorBody struct {
	Success bool   `json:"success"`
	Error   string `json:"error"`
	// Problems lists each invalid field of a rejected order.
	Problems []problem `json:"problems,omitempty"`
}

// problem is one invalid field of an order.
type problem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// writeJSON writes v as the JSON body of a response with the given code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		// Only a value that cannot be encoded gets here: a bug.
		code = http.StatusInternalServerError
		buf.Reset()
		_ = json.NewEncoder(&buf).Encode(errorBody{Error: "internal error: encode response: " + err.Error()})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// writeError answers with {"success": false, "error": msg} and notes msg
// for the request's log line.
func writeError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	writeErrorBody(w, r, code, errorBody{Error: msg})
}

// writeErrorBody answers with body, which must say what went wrong.
func writeErrorBody(w http.ResponseWriter, r *http.Request, code int, body errorBody) {
	body.Success = false
	if info := requestInfoOf(r); info != nil {
		info.err = body.Error
	}
	writeJSON(w, code, body)
}
