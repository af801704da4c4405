package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// DecodeStrict decodes exactly one JSON value from r into v: no field that v
// does not have, and nothing after the value but white space. The votes
// travel this way, both ways, so that an answer means one thing only.
// (json.Decoder.More alone lets a stray '}' or ']' through after the
// value.)
func DecodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("trailing data after the value (offset %d)", dec.InputOffset())
	}
	return nil
}
