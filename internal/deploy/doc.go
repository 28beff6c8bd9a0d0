// Package deploy runs a deployment on AWS: up, status, down, ips, attach
// and detach, the deployed config's client keys, over narrow AWS interfaces
// (aws.go). The template it deploys is internal/stack's; the price of it,
// internal/pricing's. Instance mode's up (up_instance.go) adds the
// refusals of internal/preflight, the binary the instances run, and the
// hand-over of the IPs to and from the instances (internal/fleet).
package deploy
