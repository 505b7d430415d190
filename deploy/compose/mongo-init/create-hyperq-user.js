// Runs once, when the MongoDB volume is first initialised: a least-privilege user for hyperq
// (readWrite on the hyperq database only) next to the root user.
const name = process.env.HYPERQ_DB_USER || "hyperq";
db.getSiblingDB("hyperq").createUser({
  user: name,
  pwd: process.env.HYPERQ_DB_PASSWORD,
  roles: [{ role: "readWrite", db: "hyperq" }],
});
print(`created MongoDB user ${name} with readWrite on database hyperq`);
