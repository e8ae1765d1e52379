package standin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
)

const (
	typeInvalidRequest = "invalid_request_error"
	typeAuthentication = "authentication_error"
)

// plainInvalidParameters is the plain-text 422 body that DeepSeek sent until
// early 2025, when its errors were not yet JSON.
const plainInvalidParameters = "Failed to deserialize the JSON body into the target type: invalid parameters"

// apiError is an error response in DeepSeek's envelope.
type apiError struct {
	status  int
	message string
	typ     string
	code    string
}

func (e apiError) body() []byte {
	type inner struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	}
	return marshal(struct {
		Error inner `json:"error"`
	}{inner{Message: e.message, Type: e.typ, Code: e.code}})
}

func writeError(w http.ResponseWriter, e apiError) {
	body := e.body()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.status)
	_, _ = w.Write(body) // a client that left needs no error body
}

func invalidRequest(message string) apiError {
	return apiError{status: http.StatusBadRequest, message: message, typ: typeInvalidRequest, code: typeInvalidRequest}
}

// authFailure returns the 401 for key, repeating only its last four
// characters, as DeepSeek does, and none of a key that short.
func authFailure(key string) apiError {
	last := ""
	if r := []rune(key); len(r) > 4 {
		last = string(r[len(r)-4:])
	}
	return apiError{
		status:  http.StatusUnauthorized,
		message: fmt.Sprintf("Authentication Fails, Your api key: ****%s is invalid", last),
		typ:     typeAuthentication,
		code:    typeInvalidRequest,
	}
}

// statusError returns the error response that status=N injects.
//
// NOTE: the 401 and 402 messages and the 400, 401, 402 and 429 types follow
// DeepSeek's responses. DeepSeek does not document the others, so the
// remaining messages, types and codes are the stand-in's own choice.
func statusError(status int, key string) apiError {
	switch status {
	case http.StatusUnauthorized:
		return authFailure(key)
	case http.StatusPaymentRequired:
		return apiError{status: status, message: "Insufficient Balance", typ: "unknown_error", code: typeInvalidRequest}
	case http.StatusUnprocessableEntity:
		return apiError{status: status, message: "Invalid Parameters", typ: typeInvalidRequest, code: typeInvalidRequest}
	case http.StatusTooManyRequests:
		return apiError{status: status, message: "Too many concurrent requests", typ: "rate_limit_error", code: "rate_limit_exceeded"}
	case http.StatusInternalServerError:
		return apiError{status: status, message: "Internal Server Error", typ: "server_error", code: "server_error"}
	case http.StatusServiceUnavailable:
		return apiError{status: status, message: "Server overloaded, please try again later", typ: "server_error", code: "server_overloaded"}
	default:
		return invalidRequest("Invalid request format")
	}
}

// marshal encodes v as compact JSON without HTML escaping, as DeepSeek sends
// it. It panics when v cannot be encoded, which the package's own response
// types never cause.
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("standin: marshal %T: %v", v, err))
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// decodeBody decodes a JSON request body into v. Its error messages follow
// DeepSeek's: "Failed to parse the request body as JSON" for syntax errors
// and "Failed to deserialize the JSON body into the target type" for wrong
// types, each with a line and column.
func decodeBody(body []byte, v any) *apiError {
	err := json.Unmarshal(body, v)
	if err == nil {
		return nil
	}

	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	var e apiError
	switch {
	case errors.As(err, &syntaxErr):
		line, col := position(body, syntaxErr.Offset)
		e = invalidRequest(fmt.Sprintf("Failed to parse the request body as JSON: %s at line %d column %d", syntaxErr, line, col))
	case errors.As(err, &typeErr):
		line, col := position(body, typeErr.Offset)
		e = invalidRequest(fmt.Sprintf("Failed to deserialize the JSON body into the target type: %s: invalid type: %s, expected %s at line %d column %d",
			jsonFieldPath(typeErr.Field), typeErr.Value, jsonTypeName(typeErr.Type), line, col))
	default:
		e = invalidRequest(fmt.Sprintf("Failed to deserialize the JSON body into the target type: %s", err))
	}
	return &e
}

// jsonFieldPath returns the JSON path of a field that encoding/json names in
// an error, without the names of embedded Go structs.
func jsonFieldPath(field string) string {
	if field == "" {
		return "body"
	}
	parts := strings.Split(field, ".")
	for len(parts) > 1 && embeddedStructs[parts[0]] {
		parts = parts[1:]
	}
	return strings.Join(parts, ".")
}

// embeddedStructs are the Go struct names that encoding/json puts in a
// field path when a request type embeds them.
var embeddedStructs = map[string]bool{"chatFields": true}

// jsonTypeName returns the JSON kind a Go type decodes from, so that error
// messages speak JSON rather than Go.
func jsonTypeName(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a sequence"
	case reflect.Struct, reflect.Map:
		return "a map"
	default:
		return "a value"
	}
}

// missingField returns the 400 for a required field that the body lacks,
// positioned at the end of the body as serde reports it.
func missingField(body []byte, name string) *apiError {
	line, col := position(body, int64(len(body)))
	e := invalidRequest(fmt.Sprintf("Failed to deserialize the JSON body into the target type: missing field `%s` at line %d column %d", name, line, col))
	return &e
}

// deserializeError returns the 400 for a body that parses but has a wrong
// value.
func deserializeError(format string, args ...any) *apiError {
	e := invalidRequest("Failed to deserialize the JSON body into the target type: " + fmt.Sprintf(format, args...))
	return &e
}

// position converts a byte offset in body to a 1-based line and column.
func position(body []byte, offset int64) (line, col int) {
	offset = min(max(offset, 0), int64(len(body)))
	before := body[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = len(before) - (bytes.LastIndexByte(before, '\n') + 1)
	return line, col
}
