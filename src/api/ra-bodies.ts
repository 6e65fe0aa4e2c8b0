/** OpenAPI documentation of the RA API's bodies. zod validates them for real inside the services. */
const str = (maxLength: number) => ({ type: 'string', maxLength });
const date = { type: 'string', format: 'date' };
export const reasonBody = { type: 'object', properties: { reason: str(1000) } };
export const requiredReasonBody = { ...reasonBody, required: ['reason'] };
export const image = {
  type: 'object',
  required: ['data'],
  properties: { data: { type: 'string', contentEncoding: 'base64' } },
};
export const personBody = {
  type: 'object',
  required: ['givenName', 'familyName', 'dateOfBirth'],
  properties: {
    title: str(35),
    givenName: str(100),
    middleNames: str(200),
    familyName: str(100),
    preferredName: str(200),
    dateOfBirth: date,
    niNumber: str(20),
    email: str(254),
    mobile: str(20),
  },
};
export const searchBody = {
  type: 'object',
  properties: {
    userId: str(12),
    niNumber: str(20),
    email: str(254),
    familyName: str(100),
    givenName: str(100),
    dateOfBirth: date,
    limit: { type: 'integer', minimum: 1, maximum: 100 },
    after: { type: ['string', 'null'] },
  },
  examples: [{ familyName: 'Smith', givenName: 'Jane', dateOfBirth: '1980-04-01' }, { userId: '555073103100' }],
};
export const documentsBody = {
  type: 'array',
  maxItems: 10,
  items: {
    type: 'object',
    required: ['category', 'type'],
    properties: {
      category: { type: 'string', enum: ['photo_id', 'address', 'other'] },
      type: { type: 'string', description: 'passport, photocard_driving_licence, utility_bill, bank_statement, …' },
      lastChars: { type: 'string', maxLength: 4, description: 'the last 4 characters of the number only' },
      issuedOn: date,
      expiresOn: date,
    },
  },
};
export const checkProperties = {
  method: { type: 'string', enum: ['face_to_face', 'remote'] },
  place: str(200),
  documents: documentsBody,
  photo: image,
  notes: str(1000),
};
export const checkBody = { type: 'object', required: ['method', 'documents', 'photo'], properties: checkProperties };
export const resolutionProperties = {
  duplicateResolution: { type: 'string', description: "'new_person' or 'existing:<user ID>'" },
  confirmedDifferentFrom: { type: 'array', items: str(12), maxItems: 20 },
};
export const registerBody = {
  type: 'object',
  required: ['person', 'method', 'documents', 'photo'],
  properties: { person: personBody, ...checkProperties, ...resolutionProperties },
};
export const nameBody = {
  type: 'object',
  required: ['evidence'],
  properties: {
    title: str(35),
    givenName: str(100),
    middleNames: str(200),
    familyName: str(100),
    preferredName: str(200),
    evidence: {
      type: 'object',
      required: ['type'],
      properties: { type: { type: 'string' }, lastChars: str(4) },
    },
    reason: str(1000),
  },
};
export const applicationBody = {
  type: 'object',
  required: ['applicant', 'odsCode', 'selfie', 'photoIdImage'],
  properties: {
    applicant: personBody,
    odsCode: { type: 'string', description: 'the organisation you are joining' },
    selfie: image,
    photoIdImage: image,
  },
};
export const verifyBody = {
  type: 'object',
  required: ['videoCheckedAt', 'documents'],
  properties: {
    videoCheckedAt: { type: 'string', format: 'date-time' },
    notes: str(1000),
    documents: documentsBody,
    ...resolutionProperties,
  },
};
export const accessRequestBody = {
  type: 'object',
  required: ['userId', 'positionId', 'startDate', 'reason'],
  properties: {
    userId: str(12),
    positionId: { type: 'string' },
    startDate: date,
    endDate: { type: ['string', 'null'], format: 'date' },
    reason: str(1000),
    expiresInDays: { type: 'integer', minimum: 1, maximum: 90 },
  },
  examples: [{ userId: '555073103100', positionId: '42', startDate: '2027-01-04', reason: 'Joins ward 7 as a nurse' }],
};
