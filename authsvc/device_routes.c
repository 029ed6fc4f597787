/*
 * Routes of the device module. The scope column is what an API key needs;
 * NULL means only keys with "*" may call the route.
 */
#include "devices.h"

#define BODY FA_ROUTE_BODY
#define PUBLIC FA_ROUTE_PUBLIC

const struct fa_route fa_device_routes[] = {
        {"POST", "/v1/devices", fa_devices_create, BODY, "devices:write"},
        {"GET", "/v1/devices", fa_devices_list, 0, "devices:read"},
        {"POST", "/v1/devices/enroll", fa_devices_enroll, PUBLIC | BODY, NULL},
        {"GET", "/v1/devices/{id}", fa_devices_get, 0, "devices:read"},
        {"POST", "/v1/devices/{id}/revoke", fa_devices_revoke, BODY,
         "devices:write"},
        {"POST", "/v1/devices/{id}/enrollment-code", fa_devices_new_code, 0,
         "devices:write"},
        {"POST", "/v1/devices/{id}/renew", fa_devices_renew, PUBLIC | BODY,
         NULL},
        {"GET", "/v1/ca", fa_ca_get_certificate, PUBLIC, NULL},
        {"GET", "/v1/ca/crl", fa_ca_get_crl, PUBLIC, NULL},
        {"POST", "/v1/mfa/device-keys", fa_device_keys_register, BODY, NULL},
        {"GET", "/v1/mfa/device-keys", fa_device_keys_list, 0, NULL},
        {"DELETE", "/v1/mfa/device-keys/{id}", fa_device_keys_revoke, 0, NULL},
        {"POST", "/v1/auth/device-key/challenge", fa_device_keys_challenge,
         PUBLIC | BODY, NULL},
        {"POST", "/v1/auth/device-key/verify", fa_device_keys_verify,
         PUBLIC | BODY, NULL},
        {"POST", "/v1/api-keys", fa_api_keys_create, BODY, "keys:admin"},
        {"GET", "/v1/api-keys", fa_api_keys_list, 0, "keys:admin"},
        {"DELETE", "/v1/api-keys/{id}", fa_api_keys_revoke, 0, "keys:admin"},
        {NULL, NULL, NULL, 0, NULL},
};
