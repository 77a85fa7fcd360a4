// The descriptor list: every field of TargetSlot is either in kTargetStats exactly once or
// one of the slot's health and address fields, so a counter added to the layout and
// forgotten in the list fails here.

#include <gtest/gtest.h>

#include <cstddef>
#include <set>
#include <string>

#include "common/table_counters.hpp"

namespace sluice {
namespace {

// The fields of TargetSlot that are not per-address numbers, with their sizes.
size_t health_and_address_bytes() {
    return sizeof TargetSlot::up + sizeof TargetSlot::reason + sizeof TargetSlot::last_status +
           sizeof TargetSlot::check_us + sizeof TargetSlot::up_since_ms +
           sizeof TargetSlot::address_seq + sizeof TargetSlot::address_words;
}

TEST(TableCounters, EveryTargetSlotFieldIsListedOnce) {
    std::set<size_t> offsets;
    const TargetSlot slot;
    size_t in_slot = 0;
    for (const TargetStat& stat : kTargetStats) {
        if (stat.field == nullptr) continue;  // the open connections: in the LoadLedger
        ++in_slot;
        const auto at = reinterpret_cast<const char*>(&(slot.*stat.field)) -
                        reinterpret_cast<const char*>(&slot);
        EXPECT_TRUE(offsets.insert(static_cast<size_t>(at)).second) << stat.json << " twice";
    }
    // The listed fields and the others cover the slot up to its cache-line padding.
    const size_t used = in_slot * sizeof(std::atomic<uint64_t>) + health_and_address_bytes();
    EXPECT_EQ(used, offsetof(TargetSlot, address_words) + sizeof TargetSlot::address_words)
        << "a TargetSlot field is neither in kTargetStats nor a health or address field";
}

TEST(TableCounters, NamesAreUniqueAndFamiliesAdjacent) {
    std::set<std::string> json, columns, samples, families;
    for (size_t i = 0; i < kTargetStats.size(); ++i) {
        const TargetStat& stat = kTargetStats[i];
        EXPECT_TRUE(json.insert(stat.json).second) << stat.json;
        EXPECT_TRUE(columns.insert(stat.column).second) << stat.column;
        EXPECT_TRUE(samples.insert(std::string(stat.metric) + "{" + stat.label).second);
        const bool continues = i > 0 && std::string(kTargetStats[i - 1].metric) == stat.metric;
        if (continues) {
            EXPECT_EQ(std::string(kTargetStats[i - 1].help), stat.help) << stat.metric;
            EXPECT_EQ(kTargetStats[i - 1].type, stat.type) << stat.metric;
        } else {
            EXPECT_TRUE(families.insert(stat.metric).second) << stat.metric << " split in two";
        }
        const std::string metric = stat.metric;
        EXPECT_EQ(stat.type == StatType::counter, metric.ends_with("_total")) << metric;
        // A gauge is one generation's own state: it never carries over.
        EXPECT_EQ(stat.carry != Carry::none, stat.type == StatType::counter) << metric;
    }
}

TEST(TableCounters, TableCountersAreListedOnce) {
    for (size_t i = 0; i < kTableCounters.size(); ++i) {
        for (size_t j = i + 1; j < kTableCounters.size(); ++j)
            EXPECT_NE(kTableCounters[i], kTableCounters[j]) << i << " and " << j;
    }
}

}  // namespace
}  // namespace sluice
