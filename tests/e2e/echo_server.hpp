#pragma once
// A TCP echo server inside the test process, for byte-integrity tests: every connection gets a
// thread that sends back every byte it reads, in order, until the peer half-closes (EOF);
// then it finishes echoing, shuts down its write side and closes. A connection that only
// connects and closes (a TCP health check) is served the same way and echoes nothing.

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace sluice::test {

class EchoServer {
public:
    EchoServer();   // listens on 127.0.0.1, on a port of the kernel's choice
    ~EchoServer();  // stops accepting, wakes every connection thread and joins it
    EchoServer(const EchoServer&) = delete;
    EchoServer& operator=(const EchoServer&) = delete;

    uint16_t port() const { return port_; }
    // Connections that sent at least one byte.
    int connections_with_data() const { return with_data_.load(); }
    // Of those: the ones that ended with the peer's EOF, every byte echoed and the write side
    // shut, and the ones that ended otherwise (a reset, a failed send, the server stopping).
    // A connection without data (a TCP health check) counts in neither.
    int completed() const { return completed_.load(); }
    int failed() const { return failed_.load(); }
    uint64_t bytes_echoed() const { return bytes_.load(); }

private:
    void accept_loop();
    void serve(int fd);
    bool send_all(int fd, const char* data, size_t size);

    int listen_fd_ = -1;
    uint16_t port_ = 0;
    std::atomic<bool> stopping_{false};
    std::atomic<int> with_data_{0}, completed_{0}, failed_{0};
    std::atomic<uint64_t> bytes_{0};
    std::thread acceptor_;
    std::mutex mutex_;
    std::vector<std::thread> connections_;
};

}  // namespace sluice::test
