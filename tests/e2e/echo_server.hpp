#pragma once
// A TCP echo server inside the test process, for byte-integrity tests: every connection gets a
// thread that sends back every byte it reads, in order, until the peer half-closes (EOF);
// then it finishes echoing, shuts down its write side and closes. A connection that only
// connects and closes (a TCP health check) is served the same way and echoes nothing.

#include <atomic>
#include <cstdint>

#include "harness.hpp"

namespace sluice::test {

class EchoServer {
public:
    EchoServer() = default;  // listens on 127.0.0.1, on a port of the kernel's choice
    EchoServer(const EchoServer&) = delete;
    EchoServer& operator=(const EchoServer&) = delete;

    uint16_t port() const { return server_.port(); }
    // Connections that sent at least one byte.
    int connections_with_data() const { return with_data_.load(); }
    // Of those: the ones that ended with the peer's EOF, every byte echoed and the write side
    // shut, and the ones that ended otherwise (a reset, a failed send, the server stopping).
    // A connection without data (a TCP health check) counts in neither.
    int completed() const { return completed_.load(); }
    int failed() const { return failed_.load(); }
    uint64_t bytes_echoed() const { return bytes_.load(); }

private:
    void serve(int fd);
    bool send_all(int fd, const char* data, size_t size);

    std::atomic<int> with_data_{0}, completed_{0}, failed_{0};
    std::atomic<uint64_t> bytes_{0};
    // Last: destroyed first, so that its threads are joined while the counters still exist.
    LoopbackServer server_{512, "EchoServer", [this](int fd) { serve(fd); }};
};

}  // namespace sluice::test
