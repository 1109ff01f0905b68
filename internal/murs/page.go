package murs

// Page is a window of a list of MURs, newest first: at most Limit MURs
// made before the one with id After ("" for the first page). MUR ids sort
// by when they were made.
type Page struct {
	After string
	Limit int
}

// CurrencyTotal sums the MURs a filter selects in one currency: how many,
// their quantities and their amounts, as exact decimal text.
type CurrencyTotal struct {
	Currency       string
	MURs           int64
	Quantity       string
	GrossAmount    string
	DiscountAmount string
	NetAmount      string
}
