package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/sagaflow/sagaflow/orderflow"
)

// orderBody is the body of POST /process_order. Prices are JSON decimals
// (999.99), read exactly.
type orderBody struct {
	Customer orderflow.Customer `json:"customer_data"`
	Items    []orderflow.Item   `json:"items"`
}

// bodyError says why a request body cannot be read as an order.
type bodyError struct {
	status int // 400, or 413 for a body over the limit
	msg    string
}

// decodeOrder reads an order from a request body of at most limit bytes.
// Every field must be known and of the right type; a problem is reported
// with its path, as in `items[1].quantity: want an integer, got string`.
// It checks the shape of the JSON only: whether the order makes sense is
// orderflow's to say.
func decodeOrder(w http.ResponseWriter, r *http.Request, limit int64) (orderBody, *bodyError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return orderBody{}, &bodyError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", tooBig.Limit)}
	case err != nil:
		return orderBody{}, &bodyError{http.StatusBadRequest, "read request body: " + err.Error()}
	case len(bytes.TrimSpace(body)) == 0:
		return orderBody{}, &bodyError{http.StatusBadRequest, "request body is empty: want a JSON object with customer_data and items"}
	}

	// The top level first, keeping the parts raw so that each item is
	// decoded on its own and its errors can name it.
	var top struct {
		Customer json.RawMessage   `json:"customer_data"`
		Items    []json.RawMessage `json:"items"`
	}
	if err := strictDecode(body, &top); err != nil {
		return orderBody{}, describe("", err)
	}
	var o orderBody
	if len(top.Customer) > 0 {
		if err := strictDecode(top.Customer, &o.Customer); err != nil {
			return orderBody{}, describe("customer_data", err)
		}
	}
	if top.Items != nil {
		o.Items = make([]orderflow.Item, len(top.Items))
	}
	for i, raw := range top.Items {
		if err := strictDecode(raw, &o.Items[i]); err != nil {
			return orderBody{}, describe("items["+strconv.Itoa(i)+"]", err)
		}
	}
	return o, nil
}

// strictDecode decodes one JSON value into v, refusing unknown fields and
// anything after the value.
func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errTrailingData
	}
	return nil
}

var errTrailingData = errors.New("unexpected data after the JSON object")

// describe turns a decoding error at path into a bodyError that names the
// field and says what was expected.
func describe(path string, err error) *bodyError {
	at := func(field string) string {
		switch {
		case path == "":
			return field
		case field == "":
			return path
		}
		return path + "." + field
	}
	var (
		syntax    *json.SyntaxError
		wrongType *json.UnmarshalTypeError
		msg       string
	)
	switch {
	case errors.As(err, &syntax):
		msg = fmt.Sprintf("malformed JSON at byte %d: %v", syntax.Offset, err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		msg = "malformed JSON: the body ends in the middle of a value"
	case errors.Is(err, errTrailingData):
		msg = "malformed JSON: unexpected data after the JSON object"
	case errors.As(err, &wrongType):
		field := wrongType.Field
		if i := strings.LastIndexByte(field, '.'); i >= 0 { // the decoder's path lacks indexes; ours has them
			field = field[i+1:]
		}
		where := at(field)
		if where == "" {
			where = "request body"
		}
		msg = fmt.Sprintf("%s: want %s, got %s", where, jsonKind(wrongType.Type), wrongType.Value)
	case errors.Is(err, orderflow.ErrInvalidAmount):
		msg = at("price") + ": " + strings.TrimPrefix(err.Error(), "orderflow: ")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		msg = "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
		if path != "" {
			msg = path + ": " + msg
		}
	default:
		msg = "malformed JSON: " + err.Error()
	}
	return &bodyError{http.StatusBadRequest, msg}
}

// jsonKind names the JSON type a Go type is read from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return t.String()
}
