// FastCGI 1.0 constants (specification section 8).
export const FCGI_VERSION_1 = 1;
export const HEADER_LEN = 8;
export const MAX_CONTENT = 65535;

export const enum RecordType {
  BeginRequest = 1,
  AbortRequest = 2,
  EndRequest = 3,
  Params = 4,
  Stdin = 5,
  Stdout = 6,
  Stderr = 7,
  Data = 8,
  GetValues = 9,
  GetValuesResult = 10,
  UnknownType = 11,
}

export const enum Role {
  Responder = 1,
  Authorizer = 2,
  Filter = 3,
}

export const FCGI_KEEP_CONN = 1;

export const enum ProtocolStatus {
  RequestComplete = 0,
  CantMpxConn = 1,
  Overloaded = 2,
  UnknownRole = 3,
}

export function protocolStatusName(status: number): string {
  switch (status) {
    case 0: return 'FCGI_REQUEST_COMPLETE';
    case 1: return 'FCGI_CANT_MPX_CONN';
    case 2: return 'FCGI_OVERLOADED';
    case 3: return 'FCGI_UNKNOWN_ROLE';
    default: return `unknown protocolStatus ${status}`;
  }
}

export function recordTypeName(type: number): string {
  const names = ['', 'BEGIN_REQUEST', 'ABORT_REQUEST', 'END_REQUEST', 'PARAMS', 'STDIN', 'STDOUT', 'STDERR',
    'DATA', 'GET_VALUES', 'GET_VALUES_RESULT', 'UNKNOWN_TYPE'];
  return names[type] || `type ${type}`;
}
