/* Result codes shared by every fleetauth component. */
#ifndef FA_RESULT_H
#define FA_RESULT_H

typedef enum {
	FA_OK = 0,
	FA_ERR_NOMEM,     /* allocation failed */
	FA_ERR_INVALID,   /* input is malformed or out of range */
	FA_ERR_NOT_FOUND, /* a key, file or record does not exist */
	FA_ERR_IO,        /* a file or socket operation failed */
	FA_ERR_CRYPTO,    /* an OpenSSL call failed or a MAC did not verify */
	FA_ERR_TOO_LARGE, /* input exceeds a documented limit */
	FA_ERR_DENIED     /* the operation is not allowed */
} fa_result;

/* Returns a short lower-case description, for example "invalid input". */
const char *fa_result_str(fa_result result);

#endif
