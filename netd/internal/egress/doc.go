// Package egress is the net door's domain: the egress policy (allowlist
// entries, named profiles, static resolve answers, allow-private prefixes),
// its strict versioned config file, and the engine that decides on a
// destination, narrows by a launch's caveats, and dials exactly the address
// it checked. It knows nothing of gRPC or HTTP.
package egress
