package reconcile

import (
	"errors"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestRetryDelay(t *testing.T) {
	tooMany := apierrors.NewTooManyRequests("slow down", 30) // Retry-After: 30
	timeout := apierrors.NewServerTimeout(schema.GroupResource{Resource: "secrets"}, "list", 7)
	tests := map[string]struct {
		backoff time.Duration
		err     error
		r       float64
		want    time.Duration
	}{
		"lowest jitter is 20 % under the backoff": {backoff: 10 * time.Second, err: errors.New("boom"), r: 0, want: 8 * time.Second},
		"middle jitter is the backoff":            {backoff: 10 * time.Second, err: errors.New("boom"), r: 0.5, want: 10 * time.Second},
		"highest jitter is 20 % over the backoff": {backoff: 10 * time.Second, err: errors.New("boom"), r: 1, want: 12 * time.Second},
		"a longer Retry-After wins":               {backoff: 5 * time.Second, err: tooMany, r: 0.5, want: 30 * time.Second},
		"a Retry-After inside a wrapped error":    {backoff: 5 * time.Second, err: fmt.Errorf("apply web: %w", tooMany), r: 0.5, want: 30 * time.Second},
		"a shorter Retry-After keeps the backoff": {backoff: 60 * time.Second, err: tooMany, r: 0.5, want: 60 * time.Second},
		"a server timeout suggests its own delay": {backoff: 1 * time.Second, err: timeout, r: 0.5, want: 7 * time.Second},
		"errors without a suggestion use backoff": {backoff: 5 * time.Second, err: apierrors.NewConflict(schema.GroupResource{Resource: "secrets"}, "x", errors.New("c")), r: 0.5, want: 5 * time.Second},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := retryDelay(tc.backoff, tc.err, tc.r); got != tc.want {
				t.Errorf("retryDelay(%s, %v, %v) = %s, want %s", tc.backoff, tc.err, tc.r, got, tc.want)
			}
		})
	}
}
