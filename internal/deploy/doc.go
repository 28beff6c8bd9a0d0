// Package deploy runs a deployment on AWS: up, status, down, ips, attach
// and detach, the deployed config's client keys, over narrow AWS interfaces
// (aws.go). The template it deploys is internal/stack's; the price of it,
// internal/pricing's.
package deploy
