#include "fa_result.h"

const char *fa_result_str(fa_result result)
{
	switch (result) {
	case FA_OK:
		return "ok";
	case FA_ERR_NOMEM:
		return "out of memory";
	case FA_ERR_INVALID:
		return "invalid input";
	case FA_ERR_NOT_FOUND:
		return "not found";
	case FA_ERR_IO:
		return "input/output error";
	case FA_ERR_CRYPTO:
		return "cryptographic operation failed";
	case FA_ERR_TOO_LARGE:
		return "input too large";
	case FA_ERR_DENIED:
		return "permission denied";
	}
	return "unknown result";
}
