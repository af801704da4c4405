package api

import (
	"strings"
	"testing"
)

func TestDecodeStrict(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string // "" when it decodes
	}{
		{name: "one object", in: `{"granted":true}`},
		{name: "white space after it", in: "{\"granted\":true} \n\t"},
		{name: "unknown field", in: `{"granted":true,"vote":"n1"}`, wantErr: "unknown field"},
		{name: "two objects", in: `{"granted":true}{"granted":false}`, wantErr: "trailing data"},
		{name: "stray closing brace", in: `{"granted":true}}`, wantErr: "trailing data"},
		{name: "stray closing bracket", in: `{"granted":true}]`, wantErr: "trailing data"},
		{name: "a value after it", in: `{"granted":true} 1`, wantErr: "trailing data"},
		{name: "empty", in: ``, wantErr: "EOF"},
		{name: "wrong type", in: `{"granted":"yes"}`, wantErr: "cannot unmarshal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v struct {
				Granted bool `json:"granted"`
			}
			err := DecodeStrict(strings.NewReader(tt.in), &v)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("DecodeStrict(%q) = %v, want error containing %q", tt.in, err, tt.wantErr)
			}
		})
	}
}
