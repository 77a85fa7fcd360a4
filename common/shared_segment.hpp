#pragma once
// Owns one anonymous shared mapping holding a SharedTable. Created by the master before any
// fork (children inherit the mapping at the same address) and before any thread exists.

#include <boost/interprocess/mapped_region.hpp>

#include "common/shared_table.hpp"

namespace sluice {

class SharedSegment {
public:
    // Maps a fresh zeroed segment and constructs the table in it. Throws on failure.
    SharedSegment();
    SharedSegment(SharedSegment&&) = default;
    SharedSegment& operator=(SharedSegment&&) = default;
    ~SharedSegment();

    // Children forked from now on do not inherit this mapping (MADV_DONTFORK): for the
    // segment of a replaced generation, which only the master still reads while its own
    // processes drain, so that no newer process keeps it alive.
    void keep_from_new_children();
    // Undoes keep_from_new_children(): children forked from now on map it again. The master
    // (single-threaded) toggles the segments it holds around each fork, so that a child maps
    // its own generation's segment only.
    void share_with_new_children();

    SharedTable& table() { return *table_; }
    const SharedTable& table() const { return *table_; }

private:
    boost::interprocess::mapped_region region_;
    SharedTable* table_ = nullptr;
};

// Owns the one anonymous shared mapping holding the LoadLedger: created by the master before
// its first fork and kept for its whole life, so that every child of every generation
// inherits it. Never marked MADV_DONTFORK.
class LedgerSegment {
public:
    // Maps a fresh zeroed ledger. Throws on failure.
    LedgerSegment();
    LedgerSegment(const LedgerSegment&) = delete;
    LedgerSegment& operator=(const LedgerSegment&) = delete;
    ~LedgerSegment();

    LoadLedger& ledger() { return *ledger_; }
    const LoadLedger& ledger() const { return *ledger_; }

private:
    boost::interprocess::mapped_region region_;
    LoadLedger* ledger_ = nullptr;
};

}  // namespace sluice
