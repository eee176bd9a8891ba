/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Names of the bus contract, shared by jobd and jobctl. dbus/org.jobd.Jobd1.xml documents them. */

#define JOBD_BUS_NAME                 "org.jobd.Jobd1"
#define JOBD_MANAGER_PATH             "/org/jobd/Jobd1"
#define JOBD_JOB_PATH_PREFIX          "/org/jobd/Jobd1/job"
#define JOBD_MANAGER_INTERFACE        "org.jobd.Jobd1.Manager"
#define JOBD_JOB_INTERFACE            "org.jobd.Jobd1.Job"

#define JOBD_ERROR_UNKNOWN_TYPE       "org.jobd.Jobd1.Error.UnknownType"
#define JOBD_ERROR_INVALID_PARAMETERS "org.jobd.Jobd1.Error.InvalidParameters"
#define JOBD_ERROR_INVALID_OPTION     "org.jobd.Jobd1.Error.InvalidOption"
#define JOBD_ERROR_NO_SUCH_JOB        "org.jobd.Jobd1.Error.NoSuchJob"
#define JOBD_ERROR_INVALID_STATE      "org.jobd.Jobd1.Error.InvalidState"
#define JOBD_ERROR_STALE_TOKEN        "org.jobd.Jobd1.Error.StaleToken"
#define JOBD_ERROR_TOO_LARGE          "org.jobd.Jobd1.Error.TooLarge"
#define JOBD_ERROR_QUOTA_EXCEEDED     "org.jobd.Jobd1.Error.QuotaExceeded"
#define JOBD_ERROR_ACCESS_DENIED      "org.freedesktop.DBus.Error.AccessDenied"
#define JOBD_ERROR_NOT_SUPPORTED      "org.freedesktop.DBus.Error.NotSupported"

#define JOBD_STATUS_PENDING   "pending"
#define JOBD_STATUS_SCHEDULED "scheduled"
#define JOBD_STATUS_BLOCKED   "blocked"
#define JOBD_STATUS_RUNNING   "running"
#define JOBD_STATUS_SUCCEEDED "succeeded"
#define JOBD_STATUS_FAILED    "failed"
#define JOBD_STATUS_CANCELLED "cancelled"
