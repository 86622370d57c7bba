package main

import (
	"github.com/rampartgw/rampart/config"
	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/payload"
)

// deps are what stateful detections need from the composition root.
type deps struct {
	counter  detections.Counter // the shared store
	fallback detections.Limiter // the per-replica fallback limiter
}

// specs lists every detection the gateway knows, in default chain order.
// Adding a detection is one file in detections/ plus one line here: its
// name (YAML key and chain entry), its default config and its constructor.
func specs(d deps) []config.Spec {
	return []config.Spec{
		config.Detection("ip", detections.IPConfig{}, ctor(detections.NewIP)),
		config.Detection("user_agent", detections.DefaultUserAgentConfig(), ctor(detections.NewUserAgent)),
		config.Detection("rate_limit", detections.DefaultRateLimitConfig(), ctor(func(c detections.RateLimitConfig) (*detections.RateLimit, error) {
			return detections.NewRateLimit(c, d.fallback)
		})),
		config.Detection("enumeration", detections.DefaultEnumerationConfig(), ctor(func(c detections.EnumerationConfig) (*detections.Enumeration, error) {
			return detections.NewEnumeration(c, d.counter)
		})),
		config.Detection("payload", payload.DefaultConfig(), ctor(payload.New)),
	}
}

// ctor adapts a constructor returning a concrete detection.
func ctor[C any, D detections.Detection](f func(C) (D, error)) func(C) (detections.Detection, error) {
	return func(c C) (detections.Detection, error) {
		d, err := f(c)
		if err != nil {
			return nil, err
		}
		return d, nil
	}
}
