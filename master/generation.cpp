#include "master/generation.hpp"

#include <algorithm>
#include <optional>
#include <stdexcept>

#include "common/log.hpp"

namespace sluice {
namespace {

// Health state as it is; the counters that carry over from the values `mark` read (so that
// what the old generation adds after this copy is exactly what add_counts_since adds later).
void copy_slot(const TargetSlot& from, const std::array<uint64_t, kTargetStats.size()>& mark,
               TargetSlot& to) {
    net::Endpoint address;
    if (from.load_address(address)) to.store_address(address);
    to.last_status.store(from.last_status.load());
    to.check_us.store(from.check_us.load());
    to.up_since_ms.store(from.up_since_ms.load());
    to.reason.store(from.reason.load());
    to.up.store(from.up.load());
    for (size_t i = 0; i < kTargetStats.size(); ++i) {
        if (kTargetStats[i].carry != Carry::none) (to.*kTargetStats[i].field).store(mark[i]);
    }
}

// Carries target `from` of the previous table over to target `to` of the new one.
void copy_group(const SharedTable& before, const CounterMark& mark, size_t from, SharedTable& after,
                size_t to) {
    const uint32_t count = before.groups[from].address_count.load();
    for (size_t a = 0; a < count && a < kAddressesPerTarget; ++a) {
        copy_slot(before.slot(from, a), mark.slots[SharedTable::slot_index(from, a)],
                  after.slot(to, a));
    }
    after.groups[to].address_count.store(count);
    after.groups[to].draining.store(before.groups[from].draining.load());
}

// A target of the first generation: every address its name resolves to starts healthy.
void start_group(const TargetConfig& target, SharedTable& table, size_t t) {
    std::string error;
    const auto addresses = net::resolve(target.host_port, error);
    if (addresses.empty()) {
        LOG_WARN("target %s does not resolve yet (%s): DOWN until it does", target.address.c_str(),
                 error.c_str());
        return;
    }
    const size_t count = std::min(addresses.size(), kAddressesPerTarget);
    for (size_t a = 0; a < count; ++a) {
        table.slot(t, a).store_address(addresses[a]);
        table.slot(t, a).up.store(1);
    }
    table.groups[t].address_count.store(static_cast<uint32_t>(count));
}

// Gives each target of `generation` its ledger group: a target `previous` has too keeps
// its group, a new one takes a free group. Each group is held as soon as it is chosen, so
// the destructor gives back what a failure half-way took.
void assign_ledger_groups(Generation& generation, const Generation* previous) {
    LedgerBook& book = *generation.ledger;
    for (const TargetConfig& target : generation.config.targets) {
        const int before = previous ? find_target(previous->config, target_key(target)) : -1;
        std::optional<uint32_t> group;
        if (before >= 0)
            group = previous->ledger_groups[static_cast<size_t>(before)];
        else if (!(group = book.held_group(target_key(target))))
            group = book.free_group();
        if (!group) {
            throw std::runtime_error(
                "no free connection-count group for target " + target.address +
                ": the generations still draining use them all; try again once they finish");
        }
        book.hold(*group, target_key(target));
        generation.ledger_groups.push_back(*group);
    }
}

}  // namespace

Generation::~Generation() {
    for (uint32_t group : ledger_groups) ledger->release(group);
}

std::unique_ptr<Generation> make_generation(Config config, unsigned workers, Generation* previous,
                                            uint64_t number) {
    auto generation = std::make_unique<Generation>();
    generation->number = number != 0 ? number : previous ? previous->number + 1 : 1;
    generation->workers = workers;
    generation->config = std::move(config);
    generation->ledger = previous ? previous->ledger : std::make_shared<LedgerBook>();
    assign_ledger_groups(*generation, previous);
    SharedTable& table = generation->segment.table();
    const auto& targets = generation->config.targets;
    table.generation.store(generation->number);
    table.workers.store(workers);
    table.checker_stale_after_ms.store(checker_stale_after_ms(generation->config));
    table.checker_heartbeat_ms.store(monotonic_ms());  // its checker has that long to start
    if (previous != nullptr) {
        const SharedTable& before = previous->segment.table();
        previous->handed_over = std::make_unique<CounterMark>(mark_counters(before));
        table.reloads.store(before.reloads.load() + 1);
        for (size_t i = 0; i < kTableCounters.size(); ++i)
            (table.*kTableCounters[i]).store(previous->handed_over->table[i]);
    }
    table.target_count.store(static_cast<uint32_t>(targets.size()));
    for (size_t i = 0; i < targets.size(); ++i) {
        table.groups[i].ledger_group.store(generation->ledger_groups[i]);
        const int before = previous ? find_target(previous->config, target_key(targets[i])) : -1;
        // On a reload a new target is left without addresses: the new checker resolves and
        // checks it in its first round, which the switch waits for. The master never waits
        // on a resolver while processes run.
        if (before >= 0)
            copy_group(previous->segment.table(), *previous->handed_over, before, table, i);
        else if (previous == nullptr)
            start_group(targets[i], table, i);
    }
    return generation;
}

int64_t checker_stale_after_ms(const Config& config) {
    int64_t longest = 0;
    for (const TargetConfig& t : config.targets)
        longest =
            std::max<int64_t>(longest, (t.health_check.interval + t.health_check.timeout).count());
    return std::max<int64_t>(kMinCheckerSilenceMs, 2 * longest);
}

void carry_over_drained(const Generation& finished, Generation& current) {
    give_back_shares(finished.segment.table(), finished.ledger->ledger());
    if (finished.handed_over == nullptr) return;
    add_counts_since(*finished.handed_over, finished.config, finished.segment.table(),
                     current.config, current.segment.table());
}

std::string describe_changes(const Generation& before, const Generation& after) {
    std::string added, removed;
    for (const auto& t : after.config.targets) {
        if (find_target(before.config, target_key(t)) < 0) added += " +" + t.address;
    }
    for (const auto& t : before.config.targets) {
        if (find_target(after.config, target_key(t)) < 0) removed += " -" + t.address;
    }
    std::string out;
    if (!added.empty() || !removed.empty()) out += "targets" + added + removed;
    if (before.workers != after.workers) {
        if (!out.empty()) out += ", ";
        out += "workers " + std::to_string(before.workers) + " -> " + std::to_string(after.workers);
    }
    if (!(before.config.listen == after.config.listen)) {
        if (!out.empty()) out += ", ";
        out +=
            "listen " + before.config.listen.to_string() + " -> " + after.config.listen.to_string();
    }
    return out.empty() ? "no change to targets or workers" : out;
}

}  // namespace sluice
