#pragma once
// A TCP server inside the test process whose behaviour each test scripts: it reads one HTTP
// request head per connection and hands the socket and the request path to a handler, on a
// thread of its own. For targets that must misbehave or stream slowly on cue.

#include <atomic>
#include <functional>
#include <mutex>
#include <string>

#include "harness.hpp"

namespace sluice::test {

class ScriptedServer {
public:
    // `handler(fd, path)` answers one connection; the server closes the socket afterwards.
    using Handler = std::function<void(int fd, const std::string& path)>;

    explicit ScriptedServer(Handler handler);
    ScriptedServer(const ScriptedServer&) = delete;
    ScriptedServer& operator=(const ScriptedServer&) = delete;

    uint16_t port() const { return server_.port(); }
    // Connections that sent a complete request head (a bare TCP connect does not count).
    int requests() const { return requests_.load(); }
    // The bytes the last request was preceded by (a PROXY protocol header, say).
    std::string last_prefix() const {
        std::lock_guard lock(mutex_);
        return last_prefix_;
    }
    bool stopping() const { return server_.stopping(); }

    // Handler helpers.
    static void send_all(int fd, const std::string& data);
    static std::string reply(int status, const std::string& body, const std::string& instance);
    // Blocks until the peer closes or the server stops (a target that never answers).
    void hang(int fd) const;

private:
    void serve(int fd);

    Handler handler_;
    std::atomic<int> requests_{0};
    mutable std::mutex mutex_;
    std::string last_prefix_;
    // Last: destroyed first (it stops accepting, wakes waiting handlers and joins every
    // thread) while the members above still exist.
    LoopbackServer server_{128, "ScriptedServer", [this](int fd) { serve(fd); }};
};

}  // namespace sluice::test
