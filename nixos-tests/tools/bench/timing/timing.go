// Package timing is what benchrun measures and prints, one JSON line per
// command, and what the bench command reads back.
package timing

// Result summarizes the measured runs of one command.
type Result struct {
	Runs      int     `json:"runs"`
	MedianMS  float64 `json:"medianMs"`
	MinMS     float64 `json:"minMs"`
	MaxMS     float64 `json:"maxMs"`
	MaxRSSKB  int64   `json:"maxRssKb"` // the largest child's peak resident set
	ExitCodes []int   `json:"exitCodes"`
}
