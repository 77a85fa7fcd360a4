#include "master/supervisor.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>

#include "common/exit_codes.hpp"
#include "common/log.hpp"
#include "health/checker.hpp"
#include "worker/worker.hpp"

namespace sluice {
namespace {

constexpr auto kQuickDeath = std::chrono::seconds(1);
constexpr auto kMaxBackoff = std::chrono::seconds(10);
constexpr auto kStopGrace = std::chrono::seconds(5);

const char* role_name(bool health) { return health ? "health" : "worker"; }

std::string describe_status(int status) {
    if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
    return "stopped";
}

}  // namespace

sigset_t Supervisor::signal_set() {
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2}) sigaddset(&set, s);
    return set;
}

Supervisor::Supervisor(const Config& config, unsigned workers, size_t max_connections_per_worker,
                       UniqueFd listener, SharedSegment segment)
    : config_(config),
      max_connections_per_worker_(max_connections_per_worker),
      listener_(std::move(listener)),
      segment_(std::move(segment)),
      master_pid_(getpid()) {
    children_.push_back(Child{Role::health, 0});
    for (unsigned i = 1; i <= workers; ++i) children_.push_back(Child{Role::worker, int(i)});
}

void Supervisor::spawn(Child& child) {
    const pid_t pid = fork();
    if (pid < 0) {
        LOG_ERROR("fork failed: %s; retrying", std::strerror(errno));
        child.respawn_at = Clock::now() + std::chrono::milliseconds(500);
        return;
    }
    if (pid == 0) run_child(child);
    child.pid = pid;
    child.started = Clock::now();
    LOG_INFO("started %s process %d", role_name(child.role == Role::health), pid);
}

void Supervisor::run_child(const Child& child) {
    // A child never outlives the master; if the master died before prctl, leave now.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master_pid_) _exit(kExitOk);
    log::set_role(role_name(child.role == Role::health));
    int code = kExitFatal;
    try {
        code = child.role == Role::health
                   ? health::run_checker(config_, segment_.table())
                   : worker::run_worker(config_, segment_.table(), listener_.get(),
                                        max_connections_per_worker_);
    } catch (const std::exception& e) {
        LOG_ERROR("fatal: %s", e.what());
    }
    // _exit: threads may still run; no destructor of the master's objects may run here.
    _exit(code);
}

void Supervisor::reap_children() {
    for (;;) {
        int status = 0;
        const pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) return;
        for (Child& child : children_) {
            if (child.pid == pid) on_child_exit(child, status);
        }
    }
}

void Supervisor::on_child_exit(Child& child, int status) {
    child.pid = 0;
    const bool health = child.role == Role::health;
    if (WIFEXITED(status) && WEXITSTATUS(status) == kExitFatal) {
        child.fatal = true;
        LOG_ERROR("%s process %s: fatal error, not restarting it", role_name(health),
                  describe_status(status).c_str());
        return;
    }
    const auto lived = Clock::now() - child.started;
    child.quick_failures = lived < kQuickDeath ? child.quick_failures + 1 : 0;
    auto delay = std::chrono::milliseconds(0);
    if (child.quick_failures > 0) {
        delay = std::chrono::milliseconds(100 << std::min(child.quick_failures - 1, 7));
        delay = std::min<std::chrono::milliseconds>(delay, kMaxBackoff);
    }
    child.respawn_at = Clock::now() + delay;
    LOG_WARN("%s process %s; restarting it in %lld ms", role_name(health),
             describe_status(status).c_str(), static_cast<long long>(delay.count()));
}

void Supervisor::respawn_due() {
    const auto now = Clock::now();
    for (Child& child : children_) {
        if (child.pid == 0 && !child.fatal && child.respawn_at <= now) spawn(child);
    }
}

int Supervisor::wait_timeout_ms() const {
    auto soonest = Clock::time_point::max();
    for (const Child& child : children_) {
        if (child.pid == 0 && !child.fatal) soonest = std::min(soonest, child.respawn_at);
    }
    if (soonest == Clock::time_point::max()) return -1;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(soonest - Clock::now()).count();
    return static_cast<int>(std::clamp<int64_t>(left, 0, 60'000));
}

bool Supervisor::any_worker_can_run() const {
    return std::any_of(children_.begin(), children_.end(),
                       [](const Child& c) { return c.role == Role::worker && !c.fatal; });
}

int Supervisor::stop_children() {
    for (const Child& child : children_) {
        if (child.pid > 0) kill(child.pid, SIGTERM);
    }
    const auto deadline = Clock::now() + kStopGrace;
    const sigset_t set = signal_set();
    auto alive = [this] {
        return std::any_of(children_.begin(), children_.end(),
                           [](const Child& c) { return c.pid > 0; });
    };
    while (alive() && Clock::now() < deadline) {
        const timespec tick{0, 50'000'000};
        sigtimedwait(&set, nullptr, &tick);
        for (;;) {
            int status = 0;
            const pid_t pid = waitpid(-1, &status, WNOHANG);
            if (pid <= 0) break;
            for (Child& child : children_) {
                if (child.pid == pid) child.pid = 0;
            }
        }
    }
    for (Child& child : children_) {
        if (child.pid > 0) {
            LOG_WARN("process %d did not stop in time: killing it", child.pid);
            kill(child.pid, SIGKILL);
            waitpid(child.pid, nullptr, 0);
            child.pid = 0;
        }
    }
    return kExitOk;
}

int Supervisor::run() {
    for (Child& child : children_) spawn(child);
    const sigset_t set = signal_set();
    for (;;) {
        const int timeout = wait_timeout_ms();
        siginfo_t info{};
        int signal_number;
        if (timeout < 0) {
            signal_number = sigwaitinfo(&set, &info);
        } else {
            const timespec ts{timeout / 1000, (timeout % 1000) * 1'000'000L};
            signal_number = sigtimedwait(&set, &info, &ts);
        }
        switch (signal_number) {
            case SIGCHLD:
                reap_children();
                if (!any_worker_can_run()) {
                    LOG_ERROR("no worker can run: stopping");
                    stop_children();
                    return kExitFailure;
                }
                break;
            case SIGTERM:
            case SIGINT:
            case SIGQUIT:
                LOG_INFO("%s: stopping", strsignal(signal_number));
                return stop_children();
            case SIGHUP:
                LOG_WARN("SIGHUP: configuration reload is not implemented yet; "
                         "the running configuration is kept");
                break;
            default:
                break;  // timeout (a respawn is due) or a signal we ignore
        }
        respawn_due();
    }
}

}  // namespace sluice
