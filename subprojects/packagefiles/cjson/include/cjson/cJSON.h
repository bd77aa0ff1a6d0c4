/* Lets the wrap fallback be included as <cjson/cJSON.h>, as Debian installs it. */
#include "../../cJSON.h"
