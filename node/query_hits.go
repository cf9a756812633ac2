package node

// hitCount is the number of distinct identifiers among the hits, indexes
// into the query's values: a value given twice (two spellings of one
// number) is one hit on two lines, so the count never exceeds the distinct
// values nor the padded size (issue 19, item 11).
func (p *queryPlan) hitCount(hits []int) int {
	hit := make(map[string]bool, len(hits))
	for _, i := range hits {
		hit[string(p.inputs[i])] = true
	}
	return len(hit)
}
