#pragma once
// The master's process table and signal loop. The master owns the listening socket and the
// current generation (config + shared segment), forks the health checker and the workers,
// and then only waits: signals are blocked and taken one at a time with sigtimedwait(), so
// no handler races with the loop.
//
//   SIGCHLD          reap; respawn a child of the current generation (back-off if it keeps
//                    dying at start; never one that exited with kExitFatal)
//   SIGHUP           reload: a new generation, then the old one drains (see reload()); when
//                    its last process exits, what it counted meanwhile joins the current one
//   SIGTERM, SIGINT  graceful stop: workers finish their connections for up to
//                    shutdown_timeout; a second one stops at once
//   SIGQUIT          stop at once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"
#include "master/generation.hpp"
#include "master/listeners.hpp"
#include "worker/worker.hpp"

namespace sluice {

class Supervisor {
public:
    Supervisor(std::string config_path, std::optional<unsigned> cli_workers,
               size_t max_connections_per_worker, Listeners listeners,
               std::unique_ptr<Generation> first);

    // Starts every child and supervises until stopped; returns the master's exit code.
    // Must be called with the signals of signal_set() blocked.
    int run();

    // The signals the master takes synchronously (to block before any fork).
    static sigset_t signal_set();

    // The worker count for a config: the command line wins, then the config, then the CPUs.
    static unsigned worker_count(std::optional<unsigned> cli_workers, const Config& config);

private:
    using Clock = std::chrono::steady_clock;
    enum class Role { health, worker };
    static const char* role_name(Role role);
    struct Child {
        Role role;
        int index;  // worker number, from 1
        uint64_t generation;
        pid_t pid = 0;
        Clock::time_point started{};
        Clock::time_point respawn_at{};
        int quick_failures = 0;  // consecutive deaths soon after start: grows the back-off
        bool fatal = false;      // exited with kExitFatal: never respawned
        bool retiring = false;   // asked to stop: never respawned, removed once reaped
        Clock::time_point quit_at = Clock::time_point::max();           // then SIGQUIT
        worker::StopReason quit_reason = worker::StopReason::shutdown;  // of quit_at
        Clock::time_point kill_at = Clock::time_point::max();           // then SIGKILL
    };

    void add_children_of_current();
    void spawn(Child& child);
    [[noreturn]] void run_child(const Child& child);
    void reap_children();
    // The last process of generation `number` (not the current one) has exited: log it,
    // carry what it counted while draining into the current generation, unmap its segment.
    void finish_generation(uint64_t number);
    void on_child_exit(Child& child, int status);
    void respawn_due();
    // Waits for the next signal of signal_set(), or until the nearest deadline (-1 then).
    int wait_for_signal() const;
    // Acts on one signal (or on -1, a timeout); `stopping`: a stop was requested before it.
    void on_signal(int signal_number, bool stopping);
    void reload();
    // Makes `next` current and starts its children, then retires every child of the older
    // generations (they drain for next's drain_timeout). The listening sockets stay open
    // throughout, so the kernel queues what arrives in between: nothing is refused.
    void switch_to(std::unique_ptr<Generation> next, Listeners listeners);
    // Asks `child` to stop (SIGTERM carrying `why`) and sets its SIGQUIT and SIGKILL deadlines.
    void retire(Child& child, std::chrono::milliseconds grace, worker::StopReason why);
    void begin_stop(std::chrono::milliseconds grace);
    void enforce_deadlines();
    int wait_timeout_ms() const;
    bool any_worker_can_run() const;
    // Connections one worker of the current generation serves at once: its share of
    // max_connections, never above what the open-file limit allows.
    size_t connection_cap() const;

    const std::string config_path_;
    const std::optional<unsigned> cli_workers_;
    const size_t max_connections_per_worker_;
    Listeners listeners_;
    std::unique_ptr<Generation> current_;
    // Replaced generations whose processes still run: their segments stay mapped here until
    // the last one exits, so that what they count while draining is not lost.
    std::vector<std::unique_ptr<Generation>> draining_;
    std::vector<Child> children_;
    pid_t master_pid_;
    int stop_requests_ = 0;  // SIGTERM/SIGINT received
    int exit_code_ = 0;      // kExitFailure once no worker could run
};

}  // namespace sluice
