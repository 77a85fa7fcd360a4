#include "master/supervisor.hpp"

#include <grp.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <stdexcept>

#include "admin/admin_server.hpp"
#include "common/check.hpp"
#include "common/exit_codes.hpp"
#include "common/log.hpp"
#include "conf/loader.hpp"
#include "health/checker.hpp"
#include "master/task_budget.hpp"
#include "worker/worker.hpp"

namespace sluice {
namespace {

using std::chrono::milliseconds;

constexpr auto kQuickDeath = std::chrono::seconds(1);  // a child that dies sooner backs off
constexpr auto kFirstBackoff = milliseconds(100);      // doubled per quick death after the 2nd
constexpr auto kMaxBackoff = std::chrono::seconds(10);
constexpr auto kQuitToKill = std::chrono::seconds(2);
constexpr auto kForkRetry = milliseconds(500);  // after fork() failed (EAGAIN, ENOMEM)
// The longest sigtimedwait() with a deadline pending: deadlines are re-read at least this often.
constexpr int64_t kMaxWaitMs = 60'000;
constexpr auto kReadyPoll = milliseconds(20);           // looks at a pending generation's readiness
constexpr auto kWatchPeriod = std::chrono::seconds(1);  // checks of the checker's heartbeat
constexpr auto kSilenceLogPeriod = std::chrono::seconds(10);  // "no checker" errors, at most

std::string describe_status(int status) {
    if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
    return "stopped";
}

// Switches a child to the configured user and group before it touches any connection.
// Failing to is fatal (kExitFatal, a config-level error): running as root by mistake is
// worse than not running, and every retry would fail the same way.
void drop_privileges(const Config& config) {
    if (!config.user) return;
    const gid_t gid = *config.group;
    if (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(*config.user) != 0) {
        LOG_ERROR("cannot switch to user %s (uid %u, gid %u): %s", config.user_name.c_str(),
                  static_cast<unsigned>(*config.user), static_cast<unsigned>(gid),
                  std::strerror(errno));
        _exit(kExitFatal);
    }
}

}  // namespace

sigset_t Supervisor::signal_set() {
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2}) sigaddset(&set, s);
    return set;
}

unsigned Supervisor::worker_count(std::optional<unsigned> cli_workers, const Config& config) {
    if (cli_workers) return *cli_workers;
    if (config.workers) return *config.workers;
    return static_cast<unsigned>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
}

bool Supervisor::gives_up_on(bool is_checker, int wait_status) {
    return !is_checker && WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == kExitFatal;
}

Supervisor::Supervisor(std::string config_path, std::optional<unsigned> cli_workers,
                       size_t max_connections_per_worker, std::optional<uint64_t> task_budget,
                       Listeners listeners, std::unique_ptr<Generation> first, RelaySetup relays)
    : config_path_(std::move(config_path)),
      cli_workers_(cli_workers),
      max_connections_per_worker_(max_connections_per_worker),
      task_budget_(task_budget),
      listeners_(std::move(listeners)),
      relays_(std::move(relays)),
      current_(std::move(first)),
      master_pid_(getpid()) {}

const char* Supervisor::role_name(Role role) { return role == Role::health ? "health" : "worker"; }

void Supervisor::add_children_of(const Generation& generation) {
    const uint64_t g = generation.number;
    children_.push_back(Child{Role::health, 0, g});
    for (unsigned i = 1; i <= generation.workers; ++i)
        children_.push_back(Child{Role::worker, static_cast<int>(i), g});
}

Generation& Supervisor::generation_of(uint64_t number) {
    return pending_ && pending_->next->number == number ? *pending_->next : *current_;
}

Listeners& Supervisor::listeners_of(uint64_t number) {
    return pending_ && pending_->next->number == number ? pending_->listeners : listeners_;
}

void Supervisor::share_only(uint64_t number) {
    if (!pending_) return;  // the draining segments are never shared; current_ always is
    if (number == pending_->next->number) {
        current_->segment.keep_from_new_children();
        pending_->next->segment.share_with_new_children();
    } else {
        pending_->next->segment.keep_from_new_children();
        current_->segment.share_with_new_children();
    }
}

void Supervisor::spawn(Child& child) {
    share_only(child.generation);
    const pid_t pid = fork();
    if (pid < 0) {
        LOG_ERROR("fork failed: %s; retrying", std::strerror(errno));
        child.respawn_at = Clock::now() + kForkRetry;
        return;
    }
    if (pid == 0) run_child(child);
    child.pid = pid;
    child.started = Clock::now();
    LOG_NOTICE("started %s process %d (generation %llu)", role_name(child.role), pid,
               static_cast<unsigned long long>(child.generation));
}

void Supervisor::run_child(const Child& child) {
    Generation& generation = generation_of(child.generation);
    log::set_role(role_name(child.role));
    log::set_level(generation.config.log_level);
    drop_privileges(generation.config);
    // A child never outlives the master; if the master died before prctl, leave now.
    // (After the identity change: changing credentials clears the death signal.)
    SLUICE_CHECK(prctl(PR_SET_PDEATHSIG, SIGTERM) == 0);
    if (getppid() != master_pid_) _exit(kExitOk);
    // Keep only the listener this role serves: a worker holding the admin socket (or the
    // checker the traffic one) would keep it accepting into a queue nobody reads after the
    // master closed or replaced it. The other generation's listeners (during a reload) go too.
    Listeners& mine = listeners_of(child.generation);
    UniqueFd& kept = child.role == Role::health ? mine.admin : mine.traffic;
    std::vector<UniqueFd*> listeners = {&listeners_.traffic, &listeners_.admin};
    if (pending_) {  // a child of the current generation forked during a pending switch
        listeners.push_back(&pending_->listeners.traffic);
        listeners.push_back(&pending_->listeners.admin);
    }
    for (UniqueFd* fd : listeners) {
        if (fd != &kept) fd->reset();
    }
    // Anything thrown here is an ordinary failure (out of memory, of tasks...): the master
    // respawns the child with its back-off. Only drop_privileges() exits kExitFatal.
    int code = kExitFailure;
    try {
        SharedTable& table = generation.segment.table();
        LoadLedger& ledger = generation.ledger->ledger();
        // The admin listener lives in the health process, never in a worker, so it cannot
        // slow the data path. Its threads run until _exit: the server is never destroyed.
        if (child.role == Role::health && kept)
            (new admin::AdminServer(kept.get(), generation.config, table, ledger))->start();
        code = child.role == Role::health
                   ? health::run_checker(generation.config, table)
                   : worker::run_worker(generation.config, table, ledger, kept.get(),
                                        connection_cap(generation),
                                        static_cast<size_t>(child.index - 1), master_pid_,
                                        relays_.for_workers(generation.config));
    } catch (const std::exception& e) {
        LOG_ERROR("cannot run: %s", e.what());
    }
    // _exit: threads may still run; no destructor of the master's objects may run here.
    _exit(code);
}

size_t Supervisor::connection_cap(const Generation& generation) const {
    const Config& config = generation.config;
    size_t cap = max_connections_per_worker_;
    if (task_budget_) {
        cap = std::min(
            cap, threads_per_worker(*task_budget_, generation.workers, config.targets.size()));
    }
    if (!config.max_connections) return cap;
    const uint64_t share = (*config.max_connections + generation.workers - 1) / generation.workers;
    return static_cast<size_t>(std::min<uint64_t>(share, cap));
}

void Supervisor::reap_children() {
    for (;;) {
        int status = 0;
        const pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) break;
        for (Child& child : children_) {
            if (child.pid == pid) on_child_exit(child, status);
        }
    }
    drop_retired_children();
}

void Supervisor::drop_retired_children() {
    std::erase_if(children_, [](const Child& c) { return c.retiring && c.pid == 0; });
    finish_idle_generations();
}

void Supervisor::on_child_exit(Child& child, int status) {
    child.pid = 0;
    const char* role = role_name(child.role);
    if (child.retiring) {
        LOG_NOTICE("%s process of generation %llu %s", role,
                   static_cast<unsigned long long>(child.generation),
                   describe_status(status).c_str());
        return;
    }
    if (pending_ && child.generation == pending_->next->number) {
        // Not serving yet: the reload fails (check_pending), the current generation serves on.
        child.retiring = true;
        if (pending_->failure.empty())
            pending_->failure = std::string(role) + " process " + describe_status(status);
        return;
    }
    if (gives_up_on(child.role == Role::health, status)) {
        child.fatal = true;
        LOG_ERROR("%s process %s: fatal error, not restarting it", role,
                  describe_status(status).c_str());
        return;
    }
    const auto lived = Clock::now() - child.started;
    child.quick_failures = lived < kQuickDeath ? child.quick_failures + 1 : 0;
    milliseconds delay(0);
    if (child.quick_failures > 1) {
        delay = std::min<milliseconds>(kFirstBackoff * (1 << std::min(child.quick_failures - 2, 7)),
                                       kMaxBackoff);
    }
    child.respawn_at = Clock::now() + delay;
    LOG_WARN("%s process %s; restarting it in %lld ms", role, describe_status(status).c_str(),
             static_cast<long long>(delay.count()));
}

void Supervisor::respawn_due() {
    const auto now = Clock::now();
    for (Child& child : children_) {
        if (child.pid == 0 && !child.fatal && !child.retiring && child.respawn_at <= now)
            spawn(child);
    }
}

void Supervisor::retire(Child& child, milliseconds grace, worker::StopReason why) {
    child.retiring = true;
    if (child.pid <= 0) return;
    // The reason rides on the signals, so a worker logs what it cuts as drain_timeout or
    // shutdown_timeout; the SIGQUIT carries the reason whose deadline comes first.
    sigqueue(child.pid, SIGTERM, sigval{.sival_int = static_cast<int>(why)});
    const auto now = Clock::now();
    if (now + grace < child.quit_at) {
        child.quit_at = now + grace;
        child.quit_reason = why;
    }
    child.kill_at = std::min(child.kill_at, child.quit_at + kQuitToKill);
}

void Supervisor::begin_stop(milliseconds grace) {
    for (Child& child : children_) retire(child, grace, worker::StopReason::shutdown);
    // The workers close their copies once they stop accepting; closing ours too lets new
    // connections be refused at once instead of waiting in a queue nobody reads.
    listeners_.traffic.reset();
    if (pending_) pending_->listeners.traffic.reset();  // the original of a kept socket
}

void Supervisor::enforce_deadlines() {
    const auto now = Clock::now();
    for (Child& child : children_) {
        if (child.pid <= 0) continue;
        if (now >= child.kill_at) {
            LOG_WARN("process %d is still running: killing it", child.pid);
            kill(child.pid, SIGKILL);
            child.kill_at = Clock::time_point::max();
        } else if (now >= child.quit_at) {
            LOG_WARN("process %d did not finish in time: stopping it now", child.pid);
            sigqueue(child.pid, SIGQUIT, sigval{.sival_int = static_cast<int>(child.quit_reason)});
            child.quit_at = Clock::time_point::max();
        }
    }
}

int Supervisor::wait_timeout_ms() const {
    auto soonest = stop_requests_ > 0 ? Clock::time_point::max() : next_watch_;
    // A pending switch is decided on the state the new processes publish, not on a signal.
    if (pending_) soonest = std::min(soonest, Clock::now() + kReadyPoll);
    for (const Child& child : children_) {
        if (child.pid == 0 && !child.fatal && !child.retiring)
            soonest = std::min(soonest, child.respawn_at);
        if (child.pid > 0) soonest = std::min({soonest, child.quit_at, child.kill_at});
    }
    if (soonest == Clock::time_point::max()) return -1;
    const auto left = std::chrono::duration_cast<milliseconds>(soonest - Clock::now()).count();
    return static_cast<int>(std::clamp<int64_t>(left, 0, kMaxWaitMs));
}

bool Supervisor::any_worker_can_run() const {
    return std::any_of(children_.begin(), children_.end(), [](const Child& c) {
        return c.role == Role::worker && !c.fatal && !c.retiring;
    });
}

int Supervisor::wait_for_signal() const {
    const sigset_t set = signal_set();
    const int timeout = wait_timeout_ms();
    if (timeout < 0) return sigwaitinfo(&set, nullptr);
    const timespec ts{timeout / 1000, (timeout % 1000) * 1'000'000L};
    return sigtimedwait(&set, nullptr, &ts);  // -1 (EAGAIN) when a deadline is due
}

void Supervisor::on_signal(int signal_number, bool stopping) {
    switch (signal_number) {
        case SIGCHLD:
            if (!stopping && !any_worker_can_run()) {
                LOG_ERROR("no worker can run: stopping");
                exit_code_ = kExitFailure;
                ++stop_requests_;
                begin_stop(milliseconds(0));
            }
            break;
        case SIGHUP:
            if (stopping)
                LOG_WARN("SIGHUP while stopping: ignored");
            else if (pending_)
                reload_queued_ = true;  // handled once the pending switch is decided
            else
                reload();
            break;
        case SIGTERM:
        case SIGINT:
            if (++stop_requests_ == 1) {
                const auto grace = current_->config.shutdown_timeout;
                LOG_NOTICE("%s: stopping; connections may finish for up to %lld ms",
                           strsignal(signal_number), static_cast<long long>(grace.count()));
                begin_stop(grace);
                break;
            }
            [[fallthrough]];
        case SIGQUIT:
            LOG_NOTICE("%s: stopping now", strsignal(signal_number));
            ++stop_requests_;
            begin_stop(milliseconds(0));
            break;
        default: break;  // a timeout: a respawn or a deadline is due
    }
}

int Supervisor::run() {
    add_children_of(*current_);
    for (Child& child : children_) spawn(child);
    next_watch_ = Clock::now() + kWatchPeriod;
    for (;;) {
        const int signal_number = wait_for_signal();
        const bool stopping = stop_requests_ > 0;
        reap_children();  // whatever woke us: a SIGCHLD may have been merged with another
        on_signal(signal_number, stopping);
        enforce_deadlines();
        if (stop_requests_ > 0) {
            // Stopping, a child not running is never started again: none running, none left
            // (one waiting for its respawn sends no SIGCHLD to wait for).
            if (std::all_of(children_.begin(), children_.end(),
                            [](const Child& c) { return c.pid <= 0; }))
                return exit_code_;
            continue;
        }
        check_pending();
        respawn_due();
        if (Clock::now() >= next_watch_) {
            next_watch_ = Clock::now() + kWatchPeriod;
            watch_checker();
        }
    }
}

void Supervisor::watch_checker() {
    const SharedTable& table = current_->segment.table();
    if (!checker_silent(table, monotonic_ms())) return;
    const auto now = Clock::now();
    if (last_silence_log_ != Clock::time_point{} && now - last_silence_log_ < kSilenceLogPeriod)
        return;
    last_silence_log_ = now;
    const long long silent_ms = monotonic_ms() - table.checker_heartbeat_ms.load();
    LOG_ERROR(
        "no health checker has run for %lld ms (generation %llu): workers now also try targets "
        "marked DOWN, until a checker runs again",
        silent_ms, static_cast<unsigned long long>(current_->number));
}

}  // namespace sluice
