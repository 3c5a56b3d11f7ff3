package state

// editOp is one step of a line edit script turning a into b.
type editOp struct {
	kind byte // '=' keep a[a] (== b[b]), '-' delete a[a], '+' insert b[b]
	a, b int
}

// maxEditDistance bounds the work diffLines does: past it, diffLines gives
// up (and the caller falls back to a plain re-serialisation).
const maxEditDistance = 1000

// diffLines returns a shortest edit script from a to b (Myers' algorithm,
// after trimming the common prefix and suffix), or false when more than
// maxEditDistance lines differ.
func diffLines(a, b []string) ([]editOp, bool) {
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	var ops []editOp
	for i := 0; i < pre; i++ {
		ops = append(ops, editOp{'=', i, i})
	}
	mid, ok := myers(a[pre:len(a)-suf], b[pre:len(b)-suf], maxEditDistance)
	if !ok {
		return nil, false
	}
	for _, op := range mid {
		op.a += pre
		op.b += pre
		ops = append(ops, op)
	}
	for i := 0; i < suf; i++ {
		ops = append(ops, editOp{'=', len(a) - suf + i, len(b) - suf + i})
	}
	return ops, true
}

// myers is the O((N+M)D) greedy algorithm from "An O(ND) Difference
// Algorithm and Its Variations" (Myers, 1986), keeping each round's frontier
// to backtrack the script.
func myers(a, b []string, maxD int) ([]editOp, bool) {
	n, m := len(a), len(b)
	if n+m < maxD {
		maxD = n + m
	}
	off := maxD + 1
	v := make([]int, 2*maxD+3)
	var trace [][]int // trace[d][k+d] = furthest x on diagonal k after round d
	for d := 0; d <= maxD; d++ {
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
				x = v[off+k+1] // step down: insert
			} else {
				x = v[off+k-1] + 1 // step right: delete
			}
			y := x - k
			for x < n && y < m && a[x] == b[y] {
				x++
				y++
			}
			v[off+k] = x
			if x >= n && y >= m {
				trace = append(trace, append([]int(nil), v[off-d:off+d+1]...))
				return backtrack(trace, n, m), true
			}
		}
		trace = append(trace, append([]int(nil), v[off-d:off+d+1]...))
	}
	return nil, false
}

func backtrack(trace [][]int, n, m int) []editOp {
	var rev []editOp
	x, y := n, m
	for d := len(trace) - 1; d > 0; d-- {
		prev := trace[d-1]
		at := func(k int) int { return prev[k+d-1] }
		k := x - y
		var pk int
		if k == -d || (k != d && at(k-1) < at(k+1)) {
			pk = k + 1
		} else {
			pk = k - 1
		}
		px := at(pk)
		py := px - pk
		for x > px && y > py {
			rev = append(rev, editOp{'=', x - 1, y - 1})
			x--
			y--
		}
		if x == px {
			rev = append(rev, editOp{'+', x, y - 1})
			y--
		} else {
			rev = append(rev, editOp{'-', x - 1, y})
			x--
		}
	}
	for x > 0 && y > 0 {
		rev = append(rev, editOp{'=', x - 1, y - 1})
		x--
		y--
	}
	ops := make([]editOp, len(rev))
	for i, op := range rev {
		ops[len(rev)-1-i] = op
	}
	return ops
}
