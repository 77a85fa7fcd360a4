// The reload half of the Supervisor: a new generation starts beside the serving one and is
// switched to only once it has proved that it serves (docs/ARCHITECTURE.md, "Reload").

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <stdexcept>

#include "common/log.hpp"
#include "conf/loader.hpp"
#include "master/supervisor.hpp"

namespace sluice {
namespace {

using std::chrono::milliseconds;

// Time for a new generation's processes to start and its checker to finish the first round,
// beyond the health-check timeout: generous, a loaded machine starts processes slowly.
constexpr milliseconds kReadyGrace(15'000);

unsigned long long ull(uint64_t n) { return static_cast<unsigned long long>(n); }

// A second descriptor for a listening socket that open_listeners() moved out of `from`, so
// that the serving generation keeps it while the new one proves itself (and after, if the
// reload fails).
void keep_copy(UniqueFd& from, const UniqueFd& moved_to) {
    if (from || !moved_to) return;
    const int copy = ::fcntl(moved_to.get(), F_DUPFD_CLOEXEC, 3);
    if (copy < 0)
        throw ListenError(std::string("cannot keep the listening socket: ") + std::strerror(errno));
    from = UniqueFd(copy);
}

}  // namespace

milliseconds Supervisor::ready_deadline(const Config& config) {
    milliseconds longest(0);
    for (const TargetConfig& t : config.targets)
        longest = std::max(longest, t.health_check.timeout);
    return kReadyGrace + longest;
}

void Supervisor::reload() {
    const uint64_t serving = current_->number;
    LOG_NOTICE("SIGHUP: reloading %s (generation %llu is serving)", config_path_.c_str(),
               ull(serving));
    Listeners listeners;
    std::unique_ptr<Generation> next;
    try {
        Config config = load_config(config_path_);
        relays_.prepare(config);
        const unsigned workers = worker_count(cli_workers_, config);
        // Numbers are never reused: a failed reload's generation may still be draining.
        const uint64_t number = std::max(last_number_, current_->number) + 1;
        // Before open_listeners, which takes over the sockets it keeps: a failure after it
        // (no free ledger group) would leave the serving generation without them.
        next = make_generation(std::move(config), workers, current_.get(), number);
        listeners = open_listeners(next->config, &listeners_);
        keep_copy(listeners_.traffic, listeners.traffic);
        keep_copy(listeners_.admin, listeners.admin);
    } catch (const std::exception& e) {  // config, listener, ledger, memory: nothing changed
        if (listeners.traffic && !listeners_.traffic)
            listeners_.traffic = std::move(listeners.traffic);
        if (listeners.admin && !listeners_.admin) listeners_.admin = std::move(listeners.admin);
        LOG_ERROR("reload failed, generation %llu keeps serving: %s", ull(serving), e.what());
        return;
    }
    last_number_ = next->number;
    PendingSwitch pending;
    pending.start = mark_counters(next->segment.table());
    pending.changes = describe_changes(*current_, *next);
    pending.deadline = Clock::now() + ready_deadline(next->config);
    pending.next = std::move(next);
    pending.listeners = std::move(listeners);
    pending_ = std::move(pending);
    const size_t first_new = children_.size();
    add_children_of(*pending_->next);
    for (size_t i = first_new; i < children_.size(); ++i) spawn(children_[i]);
    LOG_NOTICE("generation %llu started; generation %llu serves until it is ready",
               ull(pending_->next->number), ull(serving));
}

bool Supervisor::pending_ready() const {
    const Generation& next = *pending_->next;
    const SharedTable& table = next.segment.table();
    if (table.checker_ready.load() == 0) return false;
    for (unsigned w = 0; w < next.workers; ++w) {
        if (table.worker_accepting[w].load() == 0) return false;
    }
    return true;
}

void Supervisor::check_pending() {
    if (!pending_) return;
    if (!pending_->failure.empty()) {
        abandon_pending(pending_->failure + " before it was ready");
    } else if (pending_ready()) {
        commit_pending();
    } else if (Clock::now() >= pending_->deadline) {
        abandon_pending("not ready within " +
                        std::to_string(ready_deadline(pending_->next->config).count()) + " ms");
    } else {
        return;
    }
    if (reload_queued_ && stop_requests_ == 0) {
        reload_queued_ = false;
        LOG_NOTICE("SIGHUP received during the reload: reloading again");
        reload();
    }
}

void Supervisor::commit_pending() {
    PendingSwitch pending = std::move(*pending_);
    pending_.reset();
    const uint64_t old_number = current_->number;
    const milliseconds drain = pending.next->config.drain_timeout;
    current_->segment.keep_from_new_children();
    draining_.push_back(std::move(current_));
    current_ = std::move(pending.next);
    current_->segment.share_with_new_children();
    listeners_ = std::move(pending.listeners);
    for (Child& child : children_) {
        if (child.generation != current_->number) retire(child, drain, worker::StopReason::reload);
    }
    LOG_NOTICE(
        "reload done: generation %llu is serving (%s); generation %llu drains for up to "
        "%lld ms",
        ull(current_->number), pending.changes.c_str(), ull(old_number),
        static_cast<long long>(drain.count()));
}

void Supervisor::abandon_pending(const std::string& why) {
    PendingSwitch pending = std::move(*pending_);
    pending_.reset();
    Generation& failed = *pending.next;
    LOG_ERROR("reload failed, generation %llu keeps serving: generation %llu %s",
              ull(current_->number), ull(failed.number), why.c_str());
    // Its workers may have taken connections already: they drain as a replaced generation's
    // would, and what they counted joins the current generation when the last one exits.
    for (Child& child : children_) {
        if (child.generation == failed.number)
            retire(child, current_->config.drain_timeout, worker::StopReason::reload);
    }
    failed.handed_over = std::make_unique<CounterMark>(std::move(pending.start));
    failed.segment.keep_from_new_children();
    current_->segment.share_with_new_children();
    draining_.push_back(std::move(pending.next));
    // pending.listeners closes here: the serving generation kept its own copies.
    drop_retired_children();
}

void Supervisor::finish_idle_generations() {
    for (auto it = draining_.begin(); it != draining_.end();) {
        const uint64_t number = (*it)->number;
        const bool left = std::any_of(children_.begin(), children_.end(),
                                      [number](const Child& c) { return c.generation == number; });
        if (left) {
            ++it;
            continue;
        }
        carry_over_drained(**it, *current_);
        // Logged once its counts are in the current generation: who reads the line may then
        // read them in /metrics.
        LOG_NOTICE("generation %llu has finished: its last process exited", ull(number));
        it = draining_.erase(it);  // unmaps its segment: nothing maps it any more
    }
}

}  // namespace sluice
