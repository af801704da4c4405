package api

import "strings"

// ErrorText is err as the answers carry it in their reason and error
// fields (a vote's reason, /state's reason, a report's db_error, an
// action's error): on one line, because pgx errors span lines, one per
// address tried.
func ErrorText(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
