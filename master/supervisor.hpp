#pragma once
// The master's process table and signal loop. The master owns the listening socket and the
// current generation (config + shared segment), forks the health checker and the workers,
// and then only waits: signals are blocked and taken one at a time with sigtimedwait(), so
// no handler races with the loop.
//
//   SIGCHLD          reap; respawn a child of the current generation (back-off if it keeps
//                    dying at start); a worker that exited with kExitFatal (a config-level
//                    error) is not respawned, the checker always is
//   SIGHUP           reload: a new generation starts beside the serving one, which is told
//                    to drain once the new one is ready (see reload(), reload.cpp); when its
//                    last process exits, what it counted meanwhile joins the current one
//   SIGTERM, SIGINT  graceful stop: workers finish their connections for up to
//                    shutdown_timeout; a second one stops at once
//   SIGQUIT          stop at once
// Once a second it also checks the current checker's heartbeat, and says loudly while none
// runs (workers then distrust DOWN marks).

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"
#include "master/counter_carry.hpp"
#include "master/generation.hpp"
#include "master/listeners.hpp"
#include "master/relay_setup.hpp"
#include "worker/worker.hpp"

namespace sluice {

class Supervisor {
public:
    // `max_connections_per_worker`: what the open-file limit allows one worker;
    // `task_budget`: the tasks the children may run in all (task_budget.hpp), if limited.
    Supervisor(std::string config_path, std::optional<unsigned> cli_workers,
               size_t max_connections_per_worker, std::optional<uint64_t> task_budget,
               Listeners listeners, std::unique_ptr<Generation> first, RelaySetup relays);

    // Starts every child and supervises until stopped; returns the master's exit code.
    // Must be called with the signals of signal_set() blocked.
    int run();

    // The signals the master takes synchronously (to block before any fork).
    static sigset_t signal_set();

    // The worker count for a config: the command line wins, then the config, then the CPUs.
    static unsigned worker_count(std::optional<unsigned> cli_workers, const Config& config);

    // Whether a child that ended with `wait_status` is given up on (never respawned): only a
    // worker that exited with kExitFatal, a config-level error (it cannot switch user) that
    // every attempt would repeat. The checker is always respawned: without it a DOWN mark is
    // never cleared.
    static bool gives_up_on(bool is_checker, int wait_status);

    // How long a reload waits for the new generation to be ready (every worker accepting, its
    // checker's first round done) before it tears it down: kReadyGrace past the longest
    // health-check timeout (the first round probes the new targets).
    static std::chrono::milliseconds ready_deadline(const Config& config);

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

    // A reload in progress: the new generation runs beside the current one until ready.
    struct PendingSwitch {
        std::unique_ptr<Generation> next;
        Listeners listeners;
        CounterMark start;    // next's counters as made: what its processes count after it
        std::string changes;  // for the "reload done" line
        Clock::time_point deadline;
        std::string failure;  // set when one of its processes ended before it was ready
    };

    void add_children_of(const Generation& generation);
    void spawn(Child& child);
    [[noreturn]] void run_child(const Child& child);
    // The generation and the listeners of a child of the current or the pending generation.
    Generation& generation_of(uint64_t number);
    Listeners& listeners_of(uint64_t number);
    // Maps only `number`'s segment into the next fork (the others are kept from it).
    void share_only(uint64_t number);
    void reap_children();
    // Drops the children asked to stop that have exited (they never come back), then
    // finishes every replaced generation none of whose processes is left.
    void drop_retired_children();
    void on_child_exit(Child& child, int status);
    void respawn_due();
    // Waits for the next signal of signal_set(), or until the nearest deadline (-1 then).
    int wait_for_signal() const;
    // Acts on one signal (or on -1, a timeout); `stopping`: a stop was requested before it.
    void on_signal(int signal_number, bool stopping);
    // Reads the config and starts the next generation beside the current one (a pending
    // switch); a SIGHUP during a pending switch is queued and handled once it is decided.
    void reload();
    // Decides a pending switch: commits it once every process of the new generation is
    // ready, abandons it if one of them ended first or the deadline passed.
    void check_pending();
    // Makes the pending generation current and retires every child of the older ones (they
    // drain for its drain_timeout). The listening sockets stay open throughout, so the kernel
    // queues what arrives in between: nothing is refused.
    void commit_pending();
    // Tears the pending generation down (its processes drain, as a retired generation's do)
    // and keeps the current one serving.
    void abandon_pending(const std::string& why);
    bool pending_ready() const;
    // Finishes every replaced generation none of whose processes is left, each once.
    void finish_idle_generations();
    // Logs loudly (rate-limited) while no checker heartbeat is fresh.
    void watch_checker();
    // Asks `child` to stop (SIGTERM carrying `why`) and sets its SIGQUIT and SIGKILL deadlines.
    void retire(Child& child, std::chrono::milliseconds grace, worker::StopReason why);
    void begin_stop(std::chrono::milliseconds grace);
    void enforce_deadlines();
    int wait_timeout_ms() const;
    bool any_worker_can_run() const;
    // Connections one worker of `generation` serves at once: its share of max_connections,
    // never above what the open-file limit or the task budget allows.
    size_t connection_cap(const Generation& generation) const;

    const std::string config_path_;
    const std::optional<unsigned> cli_workers_;
    const size_t max_connections_per_worker_;
    const std::optional<uint64_t> task_budget_;
    Listeners listeners_;
    RelaySetup relays_;  // the kernel relay, once a config asked for it
    std::unique_ptr<Generation> current_;
    // Replaced generations whose processes still run: their segments stay mapped here until
    // the last one exits, so that what they count while draining is not lost.
    std::vector<std::unique_ptr<Generation>> draining_;
    std::optional<PendingSwitch> pending_;
    bool reload_queued_ = false;  // a SIGHUP came during a pending switch
    uint64_t last_number_ = 0;    // the highest generation number given out
    Clock::time_point next_watch_{};
    Clock::time_point last_silence_log_{};
    std::vector<Child> children_;
    pid_t master_pid_;
    int stop_requests_ = 0;  // SIGTERM/SIGINT received
    int exit_code_ = 0;      // kExitFailure once no worker could run
};

}  // namespace sluice
