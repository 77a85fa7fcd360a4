#pragma once
// The master's process table and signal loop. The master owns the listening socket and the
// shared segment, forks the health checker and the workers, and then only waits: signals are
// blocked and taken one at a time with sigtimedwait(), so no handler races with the loop.

#include <sys/types.h>

#include <chrono>
#include <vector>

#include "common/shared_segment.hpp"
#include "common/unique_fd.hpp"
#include "conf/config.hpp"

namespace sluice {

class Supervisor {
public:
    Supervisor(const Config& config, unsigned workers, size_t max_connections_per_worker,
               UniqueFd listener, SharedSegment segment);

    // Starts every child and supervises until SIGTERM, SIGINT or SIGQUIT; returns the
    // master's exit code. Must be called with the signals of signal_set() blocked.
    int run();

    // The signals the master takes synchronously (to block before any fork).
    static sigset_t signal_set();

private:
    using Clock = std::chrono::steady_clock;
    enum class Role { health, worker };
    struct Child {
        Role role;
        int index;  // worker number, from 1
        pid_t pid = 0;
        Clock::time_point started{};
        Clock::time_point respawn_at{};
        int quick_failures = 0;  // consecutive deaths soon after start: grows the back-off
        bool fatal = false;      // exited with kExitFatal: never respawned
    };

    void spawn(Child& child);
    [[noreturn]] void run_child(const Child& child);
    void reap_children();
    void on_child_exit(Child& child, int status);
    void respawn_due();
    int wait_timeout_ms() const;
    int stop_children();
    bool any_worker_can_run() const;

    const Config& config_;
    size_t max_connections_per_worker_;
    UniqueFd listener_;
    SharedSegment segment_;
    std::vector<Child> children_;
    pid_t master_pid_;
};

}  // namespace sluice
