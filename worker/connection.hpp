#pragma once
// What happens to one accepted client connection: pick a healthy target by the shared round
// robin, connect (on refusal try the next healthy target, each at most once), relay until
// both sides are done; with no target to reach, the seed's 503 reply.

#include <cstddef>

#include "common/shared_table.hpp"
#include "conf/config.hpp"

namespace sluice::worker {

// Buffers owned by one connection thread, reused for every connection it serves.
struct ThreadBuffers {
    static constexpr size_t kSize = 16 * 1024;
    char to_target[kSize];
    char to_client[kSize];
};

// Serves `client` (a non-blocking accepted socket) to the end. The caller closes it.
void serve_connection(int client, const Config& config, SharedTable& table,
                      ThreadBuffers& buffers);

// The seed's reply when no target is healthy, byte for byte.
inline constexpr char kServiceUnavailable[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 19\r\n\r\nService Unavailable";

// Writes the 503 reply, shuts down the write side and waits briefly for the client to
// close, so that its unread request does not turn our close into a reset that would
// destroy the reply before the client reads it.
void reply_unavailable(int client, char* scratch, size_t scratch_size);

}  // namespace sluice::worker
