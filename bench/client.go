package main

import "net/http"

type httpClient = http.Client

func newHTTPClient(t *http.Transport) *httpClient { return &http.Client{Transport: t} }
