// Callback listener registration (from _PG_init while preloading, when
// dataflow.callback_listen is set).
#pragma once

namespace dataflow::listener {
void register_listener();
}
