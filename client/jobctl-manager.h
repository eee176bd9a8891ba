/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Verbs on the manager: types, pause, resume, reload. */

#include "jobctl.h"

extern const Verb manager_verbs[];
