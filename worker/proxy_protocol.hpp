#pragma once
// The PROXY protocol header (HAProxy's spec, versions 1 and 2) that tells a target the
// client's address: written to the target before any byte of the client's. Pure.

#include <cstddef>

#include "common/net.hpp"

namespace sluice::worker {

inline constexpr size_t kMaxProxyHeader = 108;  // the longest v1 line; v2 needs at most 52

// Writes the header for a connection from `client` to `destination` (the address the client
// connected to) into `out` and returns its length; 0 if the families differ or are unknown.
size_t proxy_header_v1(const net::Endpoint& client, const net::Endpoint& destination, char* out);
size_t proxy_header_v2(const net::Endpoint& client, const net::Endpoint& destination, char* out);

}  // namespace sluice::worker
