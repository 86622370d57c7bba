package console

import (
	"errors"
	"fmt"
	"time"
)

// Config configures the console (the admin.console section of the file)
// and the monitor that feeds it.
type Config struct {
	// Enabled serves /console on the admin listener. Without an admin
	// token the console stays off whatever this says, like the admin API.
	Enabled bool `yaml:"enabled"`
	// SessionTTL is how long a login lasts.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// SecureCookie marks the session cookie Secure even when the request
	// did not arrive over TLS (the console behind a TLS-terminating proxy).
	// Over TLS it is Secure anyway.
	SecureCookie bool `yaml:"secure_cookie"`
	// LoginAttempts failed logins per client address within LoginWindow
	// are allowed; more are refused (429) until the window ends. Ten times
	// as many failures from all addresses together close the login for
	// everyone for the rest of the window.
	LoginAttempts int           `yaml:"login_attempts"`
	LoginWindow   time.Duration `yaml:"login_window"`
	// MaxStreams bounds the live pages open at once on this replica.
	MaxStreams int `yaml:"max_streams"`
	// Heartbeat is how often this replica reports itself to the fleet (it
	// does so even with the console off: other replicas' consoles and the
	// alerts read it). A replica is shown as missing after two missed
	// heartbeats.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// FleetRetention is how long a silent replica stays listed.
	FleetRetention time.Duration `yaml:"fleet_retention"`
}

// DefaultConfig returns the defaults documented in the README.
func DefaultConfig() Config {
	return Config{
		Enabled:        true,
		SessionTTL:     8 * time.Hour,
		LoginAttempts:  5,
		LoginWindow:    time.Minute,
		MaxStreams:     16,
		Heartbeat:      5 * time.Second,
		FleetRetention: time.Hour,
	}
}

// Validate reports every problem in c.
func (c Config) Validate() error {
	var errs []error
	if c.SessionTTL < time.Minute || c.SessionTTL > 30*24*time.Hour {
		errs = append(errs, fmt.Errorf("session_ttl: %v must be within [1m, 720h]", c.SessionTTL))
	}
	if c.LoginAttempts <= 0 {
		errs = append(errs, fmt.Errorf("login_attempts: %d must be > 0", c.LoginAttempts))
	}
	if c.LoginWindow <= 0 {
		errs = append(errs, fmt.Errorf("login_window: %v must be > 0", c.LoginWindow))
	}
	if c.MaxStreams <= 0 {
		errs = append(errs, fmt.Errorf("max_streams: %d must be > 0", c.MaxStreams))
	}
	if c.Heartbeat < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("heartbeat: %v must be >= 100ms", c.Heartbeat))
	}
	if c.FleetRetention < 3*c.Heartbeat {
		errs = append(errs, fmt.Errorf("fleet_retention: %v must be at least three heartbeats (%v)", c.FleetRetention, 3*c.Heartbeat))
	}
	return errors.Join(errs...)
}
