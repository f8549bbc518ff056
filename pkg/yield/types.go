package yield

// maxDependents bounds what one stop may take along: more is not a
// service's family, and portclaim does not do that.
const maxDependents = 64
