package bus

import (
	"sync"
	"time"

	"go.uber.org/zap"
)

// availability tells whether a broker's subscription is up: every wanted
// channel is on a connection that Redis has confirmed. An upgrade does not
// wait for confirmations while it is down. It logs each outage once: a
// warning when it starts, an info line when it ends.
type availability struct {
	desc string // names the Redis in logs; no credentials

	mu        sync.Mutex
	up        bool
	everUp    bool
	downSince time.Time // an outage is logged; zero when none
}

func NewAvailability(desc string) *availability {
	return &availability{desc: desc}
}

// IsUp reports whether the subscription is up.
func (a *availability) IsUp() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.up
}

// Outage reports whether an outage has been logged and not yet ended.
func (a *availability) Outage() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.downSince.IsZero()
}

// set records whether the subscription is up, and logs the end of an outage.
func (a *availability) set(up bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if up == a.up {
		return
	}
	a.up = up
	if !up {
		return
	}
	a.everUp = true
	if !a.downSince.IsZero() {
		logger().Info("redis subscription restored",
			zap.String("redis", a.desc), zap.Duration("down_for", time.Since(a.downSince)))
		a.downSince = time.Time{}
	}
}

// failed logs the start of an outage, once until it ends. node names the
// cluster node whose connection failed; "" when there is only one.
func (a *availability) failed(node string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.downSince.IsZero() {
		return
	}
	a.downSince = time.Now()
	msg := "redis subscription lost; retrying"
	if !a.everUp {
		msg = "redis unavailable; retrying"
	}
	fields := []zap.Field{zap.String("redis", a.desc), zap.Error(err)}
	if node != "" {
		fields = append(fields, zap.String("node", node))
	}
	logger().Warn(msg, fields...)
}
