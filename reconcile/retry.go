package reconcile

import (
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// retryJitter is the spread of retry delays around the backoff (±20 %), so
// that daemons failing together do not retry together.
const retryJitter = 0.2

// retryDelay is how long to wait before retrying a pass that failed with
// err: the backoff spread by ±20 % (r in [0, 1) picks where), or the delay
// the API server asked for (Retry-After) when that is longer.
func retryDelay(backoff time.Duration, err error, r float64) time.Duration {
	d := time.Duration(float64(backoff) * (1 - retryJitter + 2*retryJitter*r))
	if secs, ok := apierrors.SuggestsClientDelay(err); ok && secs > 0 {
		d = max(d, time.Duration(secs)*time.Second)
	}
	return d
}
